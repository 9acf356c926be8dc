import * as path from 'node:path';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { RustFunction } from 'cargo-lambda-cdk';
import { Construct } from 'constructs';
import { LambdaArchitectureName, LogLevel } from '../config';
import { REPO_ROOT } from '../contracts';
import { acknowledge, checkovSkip, markOwned } from './security';

/** The workspace binaries this app deploys (functions/producer, functions/consumer, functions/topic-admin, functions/db-admin). */
export type PipelineBinary = 'producer' | 'consumer' | 'topic-admin' | 'db-admin';

export interface PipelineFunctionProps {
  /** Cargo binary in the repository workspace. */
  readonly binaryName: PipelineBinary;
  readonly description: string;
  readonly architecture: LambdaArchitectureName;
  /**
   * The Lambda application log level: Lambda hands it (and the JSON log format) to the Rust binary
   * as AWS_LAMBDA_LOG_LEVEL / AWS_LAMBDA_LOG_FORMAT, the functions' only logging settings.
   */
  readonly logLevel: LogLevel;
  /** Environment (names from contracts envVars). @default - none */
  readonly environment?: Readonly<Record<string, string>>;
  readonly vpc: ec2.IVpc;
  readonly vpcSubnets: ec2.SubnetSelection;
  readonly securityGroups: ec2.ISecurityGroup[];
  /** Encrypts the environment variables and the log group. */
  readonly encryptionKey: kms.IKey;
  /** @default Duration.seconds(60) */
  readonly timeout?: Duration;
  /** @default 256 */
  readonly memorySize?: number;
  /** @default RemovalPolicy.DESTROY */
  readonly logRemovalPolicy?: RemovalPolicy;
  /** Roles need a predictable name when another account trusts them by name pattern. @default generated */
  readonly roleName?: string;
  /**
   * Why further actions the caller grants this role on Resource "*" cannot be scoped: they share
   * one cdk-nag finding (AwsSolutions-IAM5[Resource::*]) with the VPC networking actions.
   * @default - only the VPC networking actions
   */
  readonly anyResourceReasons?: readonly string[];
}

const LOG_LEVELS: Record<LogLevel, lambda.ApplicationLogLevel> = {
  error: lambda.ApplicationLogLevel.ERROR,
  warn: lambda.ApplicationLogLevel.WARN,
  info: lambda.ApplicationLogLevel.INFO,
  debug: lambda.ApplicationLogLevel.DEBUG,
  trace: lambda.ApplicationLogLevel.TRACE,
};

/**
 * A Rust Lambda from the Cargo workspace, built by cargo-lambda (zig linker, release profile)
 * through cargo-lambda-cdk, with the guard rails every pipeline function shares:
 * its own role (no AWS managed policies), a KMS-encrypted log group with a retention period,
 * JSON logs with the level set from config, a CMK for environment variables, and a VPC.
 */
export class PipelineFunction extends Construct {
  readonly function: lambda.Function;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;
  readonly binaryName: PipelineBinary;

  constructor(scope: Construct, id: string, props: PipelineFunctionProps) {
    super(scope, id);
    this.binaryName = props.binaryName;

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      encryptionKey: props.encryptionKey,
      retention: logs.RetentionDays.ONE_YEAR,
      removalPolicy: props.logRemovalPolicy ?? RemovalPolicy.DESTROY,
    });

    this.role = new iam.Role(this, 'Role', {
      roleName: props.roleName,
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Execution role of the ${props.binaryName} function`,
    });
    this.role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'WriteOwnLogGroup',
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      resources: [this.logGroup.logGroupArn],
    }));
    const vpcAccess = new iam.PolicyStatement({
      sid: 'LambdaVpcNetworkInterfaces',
      actions: [
        'ec2:CreateNetworkInterface',
        'ec2:DescribeNetworkInterfaces',
        'ec2:DescribeSubnets',
        'ec2:DescribeSecurityGroups',
        'ec2:DescribeVpcs',
        'ec2:DeleteNetworkInterface',
        'ec2:AssignPrivateIpAddresses',
        'ec2:UnassignPrivateIpAddresses',
      ],
      // EC2 does not support resource-level permissions for these ENI actions.
      resources: ['*'],
    });
    this.role.addToPrincipalPolicy(vpcAccess);
    acknowledge(
      this.role,
      'AwsSolutions-IAM5[Resource::*]',
      ['Lambda VPC networking: ec2:CreateNetworkInterface and the Describe* calls do not support resource-level '
      + 'permissions; these are the actions of AWSLambdaVPCAccessExecutionRole, written out so no managed policy is attached',
      ...(props.anyResourceReasons ?? [])].join('. Also: '),
    );

    this.function = new RustFunction(this, 'Function', {
      manifestPath: path.join(REPO_ROOT, 'Cargo.toml'),
      binaryName: props.binaryName,
      bundling: {
        // zig links against an old glibc; plain cargo on this host would need glibc 2.36,
        // newer than provided.al2023 has. Explicit, so a developer's own default cannot change it.
        environment: { CARGO_LAMBDA_COMPILER: 'cargo-zigbuild' },
      },
      description: props.description,
      architecture: props.architecture === 'arm64' ? lambda.Architecture.ARM_64 : lambda.Architecture.X86_64,
      role: this.role,
      logGroup: this.logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      applicationLogLevelV2: LOG_LEVELS[props.logLevel],
      systemLogLevelV2: lambda.SystemLogLevel.WARN,
      environment: { ...(props.environment ?? {}) },
      environmentEncryption: props.encryptionKey,
      vpc: props.vpc,
      vpcSubnets: props.vpcSubnets,
      securityGroups: props.securityGroups,
      timeout: props.timeout ?? Duration.seconds(60),
      memorySize: props.memorySize ?? 256,
      recursiveLoop: lambda.RecursiveLoop.TERMINATE,
    });
    markOwned(this.function);
    // The role's policy must exist before the function, or Lambda rejects the VPC configuration.
    this.function.node.addDependency(this.role);

    acknowledge(
      this.function,
      'AwsSolutions-L1',
      'provided.al2023 is the current OS-only runtime for Rust binaries; the rule only tracks managed language runtimes',
    );
    const defaultPolicy = this.role.node.findChild('DefaultPolicy').node.defaultChild as iam.CfnPolicy;
    checkovSkip(defaultPolicy, 'CKV_AWS_111',
      'The only unconstrained write is ec2:CreateNetworkInterface (Lambda VPC networking), which has no resource-level permissions');
    const cfn = this.function.node.defaultChild as lambda.CfnFunction;
    checkovSkip(cfn, 'CKV_AWS_115', 'Concurrency is bounded by Kafka partitions (ESM) or the schedule; reserving it fails in accounts with the default concurrency quota');
    checkovSkip(cfn, 'CKV_AWS_116', 'Invoked synchronously (ESM, CloudFormation) or by EventBridge with its own DLQ; a function DLQ only applies to async invokes');
    checkovSkip(cfn, 'CKV_AWS_50', 'X-Ray tracing is not used: the functions emit structured JSON logs and EMF metrics instead');
  }
}
