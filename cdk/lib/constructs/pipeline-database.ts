import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { RdsConfig } from '../config';
import { acknowledge, checkovSkip } from './security';

export interface PipelineDatabaseProps {
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.SubnetSelection;
  readonly databaseName: string;
  /** The consumer's least-privilege login role (contract postgres.consumerRole). */
  readonly consumerRoleName: string;
  readonly config: RdsConfig;
  readonly key: kms.IKey;
  /** Interface endpoints' security group (the proxy reads its secret through Secrets Manager). */
  readonly endpointSecurityGroup: ec2.ISecurityGroup;
  readonly retainData: boolean;
}

export const POSTGRES_PORT = 5432;

/**
 * PostgreSQL for the store events: private (isolated subnets, no public address), storage and
 * Performance Insights encrypted with a CMK, TLS enforced, credentials generated into Secrets
 * Manager. An RDS Proxy (TLS required) pools connections, so a burst of concurrent Lambda
 * invocations does not exhaust the small instance's connection slots, and presents a certificate
 * the consumer verifies against the Amazon roots it already trusts. Two credentials: the master
 * user (only the db-admin custom resource uses it, to own the schema) and the consumer's role,
 * whose password is generated into a secret of its own; the proxy knows both.
 */
export class PipelineDatabase extends Construct {
  readonly instance: rds.DatabaseInstance;
  /** The RDS-generated master user secret (schema owner; db-admin only). */
  readonly secret: secretsmanager.ISecret;
  /** The consumer role's secret (`username`, `password`), generated here. */
  readonly consumerSecret: rds.DatabaseSecret;
  readonly proxy: rds.DatabaseProxy;
  /** Host the function connects to: the proxy. */
  readonly endpointHost: string;
  /** Security group that must admit the function on POSTGRES_PORT. */
  readonly clientFacingSecurityGroup: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: PipelineDatabaseProps) {
    super(scope, id);

    const dbSecurityGroup = new ec2.SecurityGroup(this, 'InstanceSecurityGroup', {
      vpc: props.vpc,
      description: 'PostgreSQL instance: only from the RDS Proxy',
      allowAllOutbound: false,
    });

    const parameterGroup = new rds.ParameterGroup(this, 'Parameters', {
      engine: rds.DatabaseInstanceEngine.postgres({ version: engineVersion(props.config.engineVersion) }),
      description: 'Pipeline PostgreSQL: TLS only, connection logging',
      parameters: { 'rds.force_ssl': '1', log_connections: '1', log_disconnections: '1' },
    });

    this.instance = new rds.DatabaseInstance(this, 'Instance', {
      engine: rds.DatabaseInstanceEngine.postgres({ version: engineVersion(props.config.engineVersion) }),
      instanceType: new ec2.InstanceType(props.config.instanceType),
      vpc: props.vpc,
      vpcSubnets: props.subnets,
      securityGroups: [dbSecurityGroup],
      publiclyAccessible: false,
      credentials: rds.Credentials.fromGeneratedSecret('pipeline_admin', { encryptionKey: props.key }),
      databaseName: props.databaseName,
      parameterGroup,
      storageEncrypted: true,
      storageEncryptionKey: props.key,
      storageType: rds.StorageType.GP3,
      allocatedStorage: 20,
      maxAllocatedStorage: 100,
      multiAz: props.config.multiAz,
      backupRetention: Duration.days(7),
      copyTagsToSnapshot: true,
      // cdk destroy must be able to remove the instance; with retainData a final snapshot keeps the data.
      deletionProtection: false,
      removalPolicy: props.retainData ? RemovalPolicy.SNAPSHOT : RemovalPolicy.DESTROY,
      autoMinorVersionUpgrade: true,
      iamAuthentication: true,
      enablePerformanceInsights: true,
      performanceInsightEncryptionKey: props.key,
      monitoringInterval: Duration.seconds(60),
      cloudwatchLogsExports: ['postgresql', 'upgrade'],
    });
    // generated credentials always produce a secret
    this.secret = this.instance.secret as secretsmanager.ISecret;

    acknowledge(this.instance, 'AwsSolutions-RDS11', 'The default port is kept: the database is reachable only from two security groups in an isolated VPC');
    const protection = props.retainData
      ? 'cdk destroy must be able to remove the stack; the removal policy takes a final snapshot instead (retainData)'
      : 'retainData=false asks for a disposable database that cdk destroy removes';
    acknowledge(this.instance, 'AwsSolutions-RDS10', protection);
    checkovSkip(this.instance.node.defaultChild as rds.CfnDBInstance, 'CKV_AWS_293', protection);
    if (!props.config.multiAz) {
      acknowledge(this.instance, 'AwsSolutions-RDS3', 'Single-AZ by default to keep the demo affordable; set rds.multiAz=true in the config for production');
      checkovSkip(this.instance.node.defaultChild as rds.CfnDBInstance, 'CKV_AWS_157', 'Single-AZ by default for cost; rds.multiAz=true switches it on');
    }
    acknowledge(
      this.instance,
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole]',
      'Enhanced monitoring requires the AWS managed monitoring role policy; RDS assumes it, not our code',
    );
    // The consumer's role: created and granted by db-admin at deploy time (database-schema.ts).
    this.consumerSecret = new rds.DatabaseSecret(this, 'ConsumerSecret', {
      username: props.consumerRoleName,
      encryptionKey: props.key,
    });
    for (const generatedSecret of [this.instance.node.findChild('Secret'), this.consumerSecret]) {
      acknowledge(
        generatedSecret,
        'AwsSolutions-SMG4',
        'Automatic rotation is not wired yet: it needs a rotation function in this isolated VPC (docs/deploy.md lists it as follow-up)',
      );
      checkovSkip(
        generatedSecret.node.defaultChild as secretsmanager.CfnSecret,
        'CKV2_AWS_57',
        'Rotation is a documented follow-up (needs a rotation function inside the isolated VPC)',
      );
    }

    // Always behind the proxy: it pools connections for bursts of Lambda invocations, and its
    // certificate chains to the Amazon roots the consumer trusts (a direct RDS connection would
    // need the RDS CA bundle inside the function to verify TLS).
    const proxySecurityGroup = new ec2.SecurityGroup(this, 'ProxySecurityGroup', {
      vpc: props.vpc,
      description: 'RDS Proxy: from the consumer function; to the instance and Secrets Manager',
      allowAllOutbound: false,
    });
    proxySecurityGroup.addEgressRule(dbSecurityGroup, ec2.Port.tcp(POSTGRES_PORT), 'PostgreSQL to the instance');
    proxySecurityGroup.addEgressRule(props.endpointSecurityGroup, ec2.Port.tcp(443), 'Secrets Manager through the VPC endpoint');
    dbSecurityGroup.addIngressRule(proxySecurityGroup, ec2.Port.tcp(POSTGRES_PORT), 'PostgreSQL from the proxy');
    // Both secrets: the proxy logs in to the database only as users it holds a secret for, one
    // secret per database user, whose credentials must match an existing role (RDS User Guide,
    // "Setting up database credentials for RDS Proxy"). db-admin creates the consumer role.
    this.proxy = this.instance.addProxy('Proxy', {
      secrets: [this.secret, this.consumerSecret],
      vpc: props.vpc,
      vpcSubnets: props.subnets,
      securityGroups: [proxySecurityGroup],
      requireTLS: true,
      iamAuth: false,
      debugLogging: false,
    });
    this.endpointHost = this.proxy.endpoint;
    this.clientFacingSecurityGroup = proxySecurityGroup;
  }
}

function engineVersion(version: string): rds.PostgresEngineVersion {
  // A full minor version: RDS no longer creates instances from a bare major version.
  return rds.PostgresEngineVersion.of(version, version.split('.')[0]);
}
