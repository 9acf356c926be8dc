import { brokersById, discoveryHandlerSource, ListedNode } from '../lib/constructs/broker-discovery';

/** kafka:ListNodes entries in the API's shape (API_ListNodes: NodeInfoList[].BrokerNodeInfo). */
const node = (id: number, ip: string): ListedNode => ({
  BrokerNodeInfo: {
    BrokerId: id,
    ClientVpcIpAddress: ip,
    Endpoints: [`b-${id}.democluster1.w7j4hk.c2.kafka.us-east-1.amazonaws.com`],
  },
});
const listing = [node(1, '10.10.0.11'), node(2, '10.10.1.12'), node(3, '10.10.2.13')];

/** Runs the deployed handler source against a fake Kafka client that serves the given pages. */
async function runHandler(pages: ListedNode[][], brokerCount: number): Promise<{ PhysicalResourceId: string; Data: Record<string, string> }> {
  const clusterArn = 'arn:aws:kafka:us-east-1:111111111111:cluster/demo-cluster-1/6a4d1f3e-9b7c-4f2a-8c1d-2e3f4a5b6c7d-2';
  const requests: Record<string, unknown>[] = [];
  class ListNodesCommand {
    constructor(readonly input: Record<string, unknown>) {}
  }
  class KafkaClient {
    async send(command: ListNodesCommand) {
      requests.push(command.input);
      const index = requests.length - 1;
      return { NodeInfoList: pages[index], NextToken: index + 1 < pages.length ? `page-${index + 1}` : undefined };
    }
  }
  const module = { exports: {} as { handler?: (event: unknown) => Promise<never> } };
  const fakeRequire = (name: string) => {
    expect(name).toBe('@aws-sdk/client-kafka');
    return { KafkaClient, ListNodesCommand };
  };
  new Function('exports', 'require', discoveryHandlerSource())(module.exports, fakeRequire);
  const result = await module.exports.handler!({
    RequestType: 'Create',
    ResourceProperties: { ClusterArn: clusterArn, BrokerCount: String(brokerCount), Revision: '1' },
  });
  expect(requests.map((r) => r.NextToken)).toEqual(pages.map((_, i) => (i === 0 ? undefined : `page-${i}`)));
  return result;
}

describe('broker discovery keys brokers by BrokerId, not by their place in kafka:ListNodes', () => {
  test('a reordered response maps every broker id to the same host and address', () => {
    const inOrder = brokersById(listing, 3);
    const reordered = brokersById([listing[2], listing[0], listing[1]], 3);
    expect(reordered).toEqual(inOrder);
    expect(reordered).toMatchObject({
      Broker1Host: 'b-1.democluster1.w7j4hk.c2.kafka.us-east-1.amazonaws.com',
      Broker1Ip: '10.10.0.11',
      Broker3Ip: '10.10.2.13',
    });
  });

  test('the deployed handler pages through ListNodes and returns the same mapping in any order', async () => {
    const forward = await runHandler([[listing[0], listing[1]], [listing[2]]], 3);
    const backward = await runHandler([[listing[2]], [listing[1], listing[0]]], 3);
    expect(backward.Data).toEqual(forward.Data);
    expect(forward.Data.Broker2Ip).toBe('10.10.1.12');
    expect(forward.PhysicalResourceId).toMatch(/^arn:aws:kafka:us-east-1:111111111111:cluster\/demo-cluster-1\//);
  });

  test('missing, duplicate, extra or mislabelled brokers fail the deployment with the reason', () => {
    expect(() => brokersById(listing.slice(0, 2), 3)).toThrow('kafka:ListNodes lists 2 brokers, msk.brokerCount is 3');
    expect(() => brokersById([...listing, node(2, '10.10.1.99')], 3)).toThrow('kafka:ListNodes lists broker id 2 twice');
    expect(() => brokersById([...listing, node(4, '10.10.0.14')], 3)).toThrow(/broker id 4, outside 1..3/);
    const mislabelled = { BrokerNodeInfo: { ...node(1, '10.10.0.11').BrokerNodeInfo, Endpoints: ['b-2.democluster1.w7j4hk.c2.kafka.us-east-1.amazonaws.com'] } };
    expect(() => brokersById([mislabelled, listing[1], listing[2]], 3)).toThrow(/broker 1 has endpoint .*expected b-1\./);
    expect(() => brokersById([{}, ...listing], 3)).not.toThrow();
  });
});
