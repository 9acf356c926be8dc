import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { CustomResource, Duration } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { LambdaArchitectureName, LogLevel } from '../config';
import { REPO_ROOT } from '../contracts';
import { POSTGRES_PORT, PipelineDatabase } from './pipeline-database';
import { DbAdminFunction } from './functions';
import { rustCustomResourceProvider } from './rust-provider';
import { keyUseStatement } from './security';

/**
 * The Rust file that holds the migrations and the application role's grants: its hash is a
 * property of the custom resource, so a new migration or a changed grant re-runs it.
 */
export const SCHEMA_SOURCE = path.join(REPO_ROOT, 'functions', 'adapters', 'src', 'postgres_schema.rs');

/** sha256 of the migrations and grants source (see SCHEMA_SOURCE). */
export function schemaHash(source: string = SCHEMA_SOURCE): string {
  return createHash('sha256').update(readFileSync(source)).digest('hex');
}

export interface DatabaseSchemaProps {
  readonly database: PipelineDatabase;
  /** The database the migrations run in (contract postgres.database). */
  readonly databaseName: string;
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.SubnetSelection;
  /** Interface endpoints' security group: db-admin reads both secrets through Secrets Manager. */
  readonly endpointSecurityGroup: ec2.ISecurityGroup;
  /** Encrypts the function's environment and logs. */
  readonly key: kms.IKey;
  /** The key both database secrets are encrypted with. */
  readonly secretsKey: kms.IKey;
  readonly architecture: LambdaArchitectureName;
  readonly logLevel: LogLevel;
  /** @default schemaHash() of SCHEMA_SOURCE */
  readonly schemaHash?: string;
}

/**
 * The deploy-time owner of the PostgreSQL schema: a CloudFormation custom resource backed by the
 * Rust `db-admin` function. With the master secret, through the RDS Proxy, it applies the
 * migrations and creates or updates the consumer's login role (password from the consumer
 * secret) with only the grants the consumer's statements need. Create and Update are
 * idempotent; Delete changes nothing (tables, rows and role stay with the database, which its own
 * removal policy retains or deletes). Anything that sends the consumer records depends on
 * `resource`, so no batch arrives before the schema and the role exist.
 */
export class DatabaseSchema extends Construct {
  readonly resource: CustomResource;
  readonly handler: DbAdminFunction;

  constructor(scope: Construct, id: string, props: DatabaseSchemaProps) {
    super(scope, id);
    const db = props.database;

    const securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc: props.vpc,
      description: 'db-admin function: PostgreSQL through the RDS Proxy, Secrets Manager through its endpoint',
      allowAllOutbound: false,
    });
    securityGroup.addEgressRule(db.clientFacingSecurityGroup, ec2.Port.tcp(POSTGRES_PORT), 'PostgreSQL to the RDS Proxy');
    db.clientFacingSecurityGroup.addIngressRule(securityGroup, ec2.Port.tcp(POSTGRES_PORT), 'PostgreSQL from db-admin');
    securityGroup.addEgressRule(props.endpointSecurityGroup, ec2.Port.tcp(443), 'Secrets Manager through the VPC endpoint');

    this.handler = new DbAdminFunction(this, 'Handler', {
      description: 'CloudFormation custom resource: PostgreSQL migrations and the consumer role (least privilege)',
      architecture: props.architecture,
      logLevel: props.logLevel,
      settings: {},
      vpc: props.vpc,
      vpcSubnets: props.subnets,
      securityGroups: [securityGroup],
      encryptionKey: props.key,
      timeout: Duration.minutes(2),
    });
    this.handler.role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'ReadMasterAndConsumerDatabaseSecrets',
      actions: ['secretsmanager:GetSecretValue'],
      resources: [db.secret.secretArn, db.consumerSecret.secretArn],
    }));
    this.handler.role.addToPrincipalPolicy(keyUseStatement([props.secretsKey], ['kms:Decrypt']));

    const provider = rustCustomResourceProvider(this, { handler: this.handler, key: props.key });

    this.resource = new CustomResource(this, 'Resource', {
      serviceToken: provider.serviceToken,
      resourceType: 'Custom::PipelineDatabaseSchema',
      properties: {
        MasterSecretArn: db.secret.secretArn,
        AppSecretArn: db.consumerSecret.secretArn,
        Host: db.endpointHost,
        Port: String(POSTGRES_PORT),
        Database: props.databaseName,
        Tls: 'require',
        // Not read by the function: a changed migration or grant changes the resource, so
        // CloudFormation sends an Update and the new migration runs.
        SchemaHash: props.schemaHash ?? schemaHash(),
      },
    });
    // The proxy must have the instance registered as its target (and both secrets) before the
    // function connects through it.
    this.resource.node.addDependency(db.proxy, db.instance);
  }
}
