import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { DynamoKeyType, PipelineContracts, TableContract } from '../contracts';
import { acknowledge, checkovSkip } from './security';

export interface ConsumerDataProps {
  readonly contracts: PipelineContracts;
  readonly key: kms.IKey;
  readonly retainData: boolean;
}

/** The explicit-events table's logical id since its first deployment (construct id `GenericEvents`). */
export const EXPLICIT_EVENTS_TABLE_LOGICAL_ID = 'DataGenericEvents35351C91';

const ATTRIBUTE_TYPES: Record<DynamoKeyType, dynamodb.AttributeType> = {
  S: dynamodb.AttributeType.STRING,
  N: dynamodb.AttributeType.NUMBER,
  B: dynamodb.AttributeType.BINARY,
};

/**
 * The consumer's sinks and failure queues, all encrypted with one CMK:
 * DynamoDB tables from the contract (PITR, on-demand), the store-events bucket (versioned,
 * SSL only, public access blocked, lifecycle, access logs), the on-failure destination of the
 * event source mappings and the function's FIFO poison queue.
 */
export class ConsumerData extends Construct {
  readonly windowAggregates: dynamodb.Table;
  readonly explicitEvents: dynamodb.Table;
  readonly bucket: s3.Bucket;
  readonly poisonQueue: sqs.Queue;
  readonly onFailureQueue: sqs.Queue;

  constructor(scope: Construct, id: string, props: ConsumerDataProps) {
    super(scope, id);
    const { contracts } = props;
    const removalPolicy = props.retainData ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;

    const table = (tableId: string, t: TableContract) => new dynamodb.Table(this, tableId, {
      tableName: t.name,
      partitionKey: { name: t.partitionKey, type: ATTRIBUTE_TYPES[t.partitionKeyType] },
      sortKey: { name: t.sortKey, type: ATTRIBUTE_TYPES[t.sortKeyType] },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: props.key,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: props.retainData,
      removalPolicy,
    });
    this.windowAggregates = table('WindowAggregates', contracts.tables.windowAggregates);
    this.explicitEvents = table('ExplicitEvents', contracts.tables.explicitEvents);
    // The table was created as Data/GenericEvents: a new logical id would make CloudFormation
    // replace it, and with its fixed name and deletion protection the update would fail (or,
    // without them, lose every stored event). The construct is renamed, the resource is not.
    (this.explicitEvents.node.defaultChild as dynamodb.CfnTable).overrideLogicalId(EXPLICIT_EVENTS_TABLE_LOGICAL_ID);

    const accessLogs = new s3.Bucket(this, 'AccessLogs', {
      // S3 server access logging cannot deliver to SSE-KMS buckets.
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      versioned: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [
        { id: 'expire-access-logs', expiration: Duration.days(365), noncurrentVersionExpiration: Duration.days(30) },
        { id: 'abort-uploads', abortIncompleteMultipartUploadAfter: Duration.days(7) },
      ],
      removalPolicy,
    });
    acknowledge(accessLogs, 'AwsSolutions-S1', 'This is the access-log bucket; logging it into itself would loop');
    const accessLogsResource = accessLogs.node.defaultChild as s3.CfnBucket;
    checkovSkip(accessLogsResource, 'CKV_AWS_18', 'This is the access-log bucket; logging it into itself would loop');
    checkovSkip(accessLogsResource, 'CKV_AWS_145', 'S3 server access logging only delivers to SSE-S3 buckets');
    checkovSkip(accessLogsResource, 'CKV_AWS_144', 'Access logs are operational data; cross-region replication is out of scope');
    checkovSkip(accessLogsResource, 'CKV2_AWS_62', 'Nothing reacts to new access-log objects');

    this.bucket = new s3.Bucket(this, 'StoreEvents', {
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: props.key,
      bucketKeyEnabled: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      versioned: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: accessLogs,
      serverAccessLogsPrefix: 'store-events-bucket/',
      lifecycleRules: [
        {
          id: 'store-events-to-infrequent-access',
          prefix: contracts.bucket.storeEventsPrefix,
          transitions: [{ storageClass: s3.StorageClass.INFREQUENT_ACCESS, transitionAfter: Duration.days(30) }],
        },
        { id: 'expire-oversize-poison', prefix: contracts.bucket.oversizePoisonPrefix, expiration: Duration.days(90) },
        // Replays rewrite identical objects; old versions only guard against mistakes.
        { id: 'expire-noncurrent-versions', noncurrentVersionExpiration: Duration.days(30) },
        { id: 'abort-uploads', abortIncompleteMultipartUploadAfter: Duration.days(7) },
      ],
      removalPolicy,
    });
    const bucketResource = this.bucket.node.defaultChild as s3.CfnBucket;
    checkovSkip(bucketResource, 'CKV_AWS_144', 'Single-region pipeline; versioning and PITR-style replays cover recovery');
    checkovSkip(bucketResource, 'CKV2_AWS_62', 'Nothing reacts to new objects; readers query by prefix');

    const queueDefaults = {
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: props.key,
      dataKeyReuse: Duration.minutes(5),
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    };
    this.poisonQueue = new sqs.Queue(this, 'PoisonQueue', {
      ...queueDefaults,
      queueName: contracts.queues.poison,
      fifo: true,
      // The function sets MessageDeduplicationId = topic-partition-offset, so a replayed batch
      // cannot enqueue the same poison record twice within the dedupe window.
      contentBasedDeduplication: false,
    });
    acknowledge(this.poisonQueue, 'AwsSolutions-SQS3', 'Terminal queue: it is the dead-letter store for poison records itself');
    this.onFailureQueue = new sqs.Queue(this, 'OnFailureQueue', {
      ...queueDefaults,
      queueName: contracts.queues.onFailure,
    });
    acknowledge(this.onFailureQueue, 'AwsSolutions-SQS3', 'Terminal queue: it is the on-failure destination of the event source mappings');
  }
}
