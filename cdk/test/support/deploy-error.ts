/** A value or request that CloudFormation or the service API would refuse: the deployment fails. */
export class DeployError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DeployError';
  }
}

/** Where a stack is deployed. */
export interface StackEnvironment {
  readonly stackName: string;
  readonly account: string;
  readonly region: string;
}
