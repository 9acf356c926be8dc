#!/usr/bin/env node
import { App } from 'aws-cdk-lib';
import { buildPipeline } from '../lib/pipeline';

// Thin entry point: read and validate the configuration once, then build the stacks.
const app = new App();
buildPipeline(app, {
  cliAccount: process.env.CDK_DEFAULT_ACCOUNT,
  cliRegion: process.env.CDK_DEFAULT_REGION,
});
app.synth();
