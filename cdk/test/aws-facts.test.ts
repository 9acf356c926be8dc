import { azIdPrefixOf, clusterDomainOfBrokerHost, kafkaVersionProblem, MSK_KAFKA_VERSIONS } from '../lib/aws-facts';

describe('clusterDomainOfBrokerHost: the zone comes from the host, never from the cluster name', () => {
  test.each([
    // Cluster techx-tf4-orders: MSK drops the hyphens from the host label.
    ['b-1.techxtf4orders.5n1354.c2.kafka.us-east-1.amazonaws.com', 'amazonaws.com', 'techxtf4orders.5n1354.c2.kafka.us-east-1.amazonaws.com'],
    // The MSK tutorial's demo-cluster-1.
    ['b-2.democluster1.w7j4hk.c2.kafka.us-east-1.amazonaws.com', 'amazonaws.com', 'democluster1.w7j4hk.c2.kafka.us-east-1.amazonaws.com'],
    // This app's default cluster name msk-lambda-pipeline, broker 12.
    ['b-12.msklambdapipeline.a1b2c3.c3.kafka.eu-west-1.amazonaws.com', 'amazonaws.com', 'msklambdapipeline.a1b2c3.c3.kafka.eu-west-1.amazonaws.com'],
    // China: one more label in the partition suffix.
    ['b-2.techxtf4orders.5n1354.c2.kafka.cn-north-1.amazonaws.com.cn', 'amazonaws.com.cn', 'techxtf4orders.5n1354.c2.kafka.cn-north-1.amazonaws.com.cn'],
  ])('%s', (host, suffix, domain) => {
    expect(clusterDomainOfBrokerHost(host, suffix)).toBe(domain);
  });

  test('hosts of another partition or shape are refused', () => {
    expect(() => clusterDomainOfBrokerHost('b-2.techxtf4orders.5n1354.c2.kafka.cn-north-1.amazonaws.com.cn', 'amazonaws.com'))
      .toThrow(/does not end with the partition DNS suffix amazonaws.com/);
    expect(() => clusterDomainOfBrokerHost('boot-abc.c2.kafka-serverless.us-east-1.amazonaws.com', 'amazonaws.com'))
      .toThrow(/is not an MSK broker host/);
    expect(() => clusterDomainOfBrokerHost('b-1.techx-tf4-orders.extra.5n1354.c2.kafka.us-east-1.amazonaws.com', 'amazonaws.com'))
      .toThrow(/is not an MSK broker host/);
  });
});

describe('MSK Kafka versions', () => {
  test('one list, one recommended version, dated', () => {
    expect(MSK_KAFKA_VERSIONS.readOn).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    const versions = MSK_KAFKA_VERSIONS.versions.map((v) => v.version);
    expect(new Set(versions).size).toBe(versions.length);
    expect(kafkaVersionProblem('3.8.x', MSK_KAFKA_VERSIONS.readOn)).toBeUndefined();
  });
});

describe('azIdPrefixOf', () => {
  test.each([
    ['us-east-1', 'use1'], ['eu-west-1', 'euw1'], ['cn-north-1', 'cnn1'], ['cn-northwest-1', 'cnnw1'],
    ['ap-southeast-2', 'apse2'], ['us-gov-west-1', 'usgw1'], ['eu-central-2', 'euc2'],
  ])('%s -> %s', (region, prefix) => {
    expect(azIdPrefixOf(region)).toBe(prefix);
  });
});
