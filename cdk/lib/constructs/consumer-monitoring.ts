import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

export interface ConsumerMonitoringProps {
  readonly function: lambda.IFunction;
  readonly onFailureQueue: sqs.IQueue;
  readonly poisonQueue: sqs.IQueue;
  readonly key: kms.Key;
  readonly alarmEmail?: string;
  /** Records behind before the lag alarm fires. @default 10000 */
  readonly offsetLagThreshold?: number;
}

/**
 * Alarms (to an encrypted SNS topic) and a dashboard for the consumer:
 * event source mapping OffsetLag, function errors and throttles, and the depth of the
 * on-failure and poison queues (any message there needs a human).
 */
export class ConsumerMonitoring extends Construct {
  readonly alarmTopic: sns.Topic;
  readonly alarms: cloudwatch.Alarm[] = [];
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: ConsumerMonitoringProps) {
    super(scope, id);

    props.key.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'CloudWatchAlarmsPublishToTheEncryptedTopic',
      principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
      actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
      resources: ['*'],
    }));
    this.alarmTopic = new sns.Topic(this, 'AlarmTopic', {
      displayName: 'Pipeline consumer alarms',
      masterKey: props.key,
      enforceSSL: true,
    });
    if (props.alarmEmail) {
      this.alarmTopic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    }
    const action = new cwActions.SnsAction(this.alarmTopic);
    const fnName = props.function.functionName;

    const offsetLag = new cloudwatch.Metric({
      namespace: 'AWS/Lambda',
      metricName: 'OffsetLag',
      dimensionsMap: { FunctionName: fnName },
      statistic: cloudwatch.Stats.MAXIMUM,
      period: Duration.minutes(5),
    });
    const alarm = (alarmId: string, metric: cloudwatch.Metric, threshold: number, description: string, periods = 1) => {
      const a = metric.createAlarm(this, alarmId, {
        threshold,
        evaluationPeriods: periods,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: description,
      });
      a.addAlarmAction(action);
      a.addOkAction(action);
      this.alarms.push(a);
      return a;
    };

    alarm('OffsetLagAlarm', offsetLag, props.offsetLagThreshold ?? 10_000,
      'The consumer is falling behind a Kafka topic (event source mapping OffsetLag)', 3);
    alarm('ErrorsAlarm', props.function.metricErrors({ period: Duration.minutes(5), statistic: cloudwatch.Stats.SUM }), 1,
      'The consumer function failed; the ESM retries the batch (sinks are idempotent)');
    alarm('ThrottlesAlarm', props.function.metricThrottles({ period: Duration.minutes(5), statistic: cloudwatch.Stats.SUM }), 1,
      'The consumer function is throttled; raise account concurrency or lower partitions per ESM');
    const dlqDepth = props.onFailureQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5), statistic: cloudwatch.Stats.MAXIMUM });
    alarm('OnFailureQueueAlarm', dlqDepth, 1, 'Batches the event source mapping gave up on are waiting in the on-failure queue');
    const poisonDepth = props.poisonQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5), statistic: cloudwatch.Stats.MAXIMUM });
    alarm('PoisonQueueAlarm', poisonDepth, 1, 'Poison records (undecodable or invalid) are waiting in the poison queue');

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      defaultInterval: Duration.hours(3),
    });
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Consumer invocations',
        left: [
          props.function.metricInvocations({ statistic: cloudwatch.Stats.SUM }),
          props.function.metricErrors({ statistic: cloudwatch.Stats.SUM }),
          props.function.metricThrottles({ statistic: cloudwatch.Stats.SUM }),
        ],
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: 'Consumer duration (p99)',
        left: [props.function.metricDuration({ statistic: cloudwatch.Stats.p(99) })],
        width: 12,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'OffsetLag (max over the event source mappings)',
        left: [offsetLag],
        width: 12,
      }),
      new cloudwatch.GraphWidget({ title: 'Failure queues', left: [dlqDepth, poisonDepth], width: 12 }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: this.alarms, width: 24 }),
    );
  }
}
