/**
 * A CloudFormation deployment without an account: evaluates a synthesized template's intrinsic
 * functions and dynamic references the way CloudFormation does at deploy time, against a
 * {@link DeployWorld} that answers with values in AWS's documented formats.
 *
 * Written for these checks rather than taken from npm: cfn-resolver-lib (the maintained-looking
 * option, last release 2022) leaves an unknown Fn::GetAtt unresolved with a console warning instead
 * of failing, has no dynamic references, exports or custom-resource responses, and would need a new
 * dependency in the shared install; cfn-lint resolves only what is known before deployment.
 *
 * Anything CloudFormation or the service API would refuse is thrown as a {@link DeployError}: an
 * Fn::Select index out of range, a missing export, an unknown attribute or secret key, and the
 * create-time rejections modelled in resource-models.ts.
 */
import { hashText, partitionOf, PartitionFacts, zonesOf } from './aws-world';
import { DeployError, StackEnvironment } from './deploy-error';
import { createResource, CreatedResource, WorldState } from './resource-models';

export { DeployError };
export type { StackEnvironment };

type Json = Record<string, unknown>;

export interface EvaluatedResource {
  readonly logicalId: string;
  readonly type: string;
  /** Properties with every intrinsic function and dynamic reference resolved. */
  readonly properties: Json;
  readonly created: CreatedResource;
}

export interface EvaluatedStack {
  readonly env: StackEnvironment;
  readonly partition: PartitionFacts;
  readonly template: Json;
  readonly resources: ReadonlyMap<string, EvaluatedResource>;
  readonly outputs: Readonly<Record<string, unknown>>;
  /** `{{resolve:…}}` occurrences in the template as submitted (CloudFormation's limit is 60). */
  readonly dynamicReferenceCount: number;
}

/** Removes the property it stands in (Ref AWS::NoValue). */
const NO_VALUE = Symbol('AWS::NoValue');

const INTRINSICS = new Set([
  'Ref', 'Fn::GetAtt', 'Fn::Join', 'Fn::Select', 'Fn::Split', 'Fn::Sub', 'Fn::If', 'Fn::Equals', 'Fn::And',
  'Fn::Or', 'Fn::Not', 'Condition', 'Fn::ImportValue', 'Fn::GetAZs', 'Fn::FindInMap', 'Fn::Base64', 'Fn::Cidr',
  'Fn::Length', 'Fn::ToJsonString', 'Fn::Transform',
]);

const DYNAMIC_REFERENCE = /\{\{resolve:([a-z-]+):(.*?)\}\}/g;

/** `{{resolve:` occurrences in a template's text, the count CloudFormation limits. */
export function countDynamicReferences(template: unknown): number {
  return (JSON.stringify(template).match(/\{\{resolve:/g) ?? []).length;
}

/** Everything the deployments so far have created: exports, secrets, clusters, endpoint services. */
export class DeployWorld {
  readonly state: WorldState = new WorldState();
  readonly stacks = new Map<string, EvaluatedStack>();

  /** Deploys one template (its dependencies must have been deployed before). */
  deploy(template: Json, env: StackEnvironment): EvaluatedStack {
    const evaluation = new StackEvaluation(this, template, env);
    const stack = evaluation.run();
    this.stacks.set(env.stackName, stack);
    return stack;
  }
}

class StackEvaluation {
  private readonly partition: PartitionFacts;
  private readonly resources = new Map<string, EvaluatedResource>();
  private readonly conditions = new Map<string, boolean>();
  private readonly templateResources: Record<string, Json>;

  constructor(private readonly world: DeployWorld, private readonly template: Json, private readonly env: StackEnvironment) {
    this.partition = partitionOf(env.region);
    this.templateResources = (template.Resources ?? {}) as Record<string, Json>;
  }

  run(): EvaluatedStack {
    const where = this.env.stackName;
    const count = countDynamicReferences(this.template);
    for (const name of Object.keys((this.template.Conditions ?? {}) as Json)) {
      this.condition(name, `${where}/Conditions/${name}`);
    }
    for (const logicalId of this.creationOrder()) {
      const resource = this.templateResources[logicalId];
      const path = `${where}/${logicalId}`;
      if (typeof resource.Condition === 'string' && !this.condition(resource.Condition, path)) {
        continue;
      }
      const type = String(resource.Type);
      const evaluated = this.evaluate(resource.Properties ?? {}, `${path}.Properties`);
      const properties = this.resolveDynamicReferences(evaluated === NO_VALUE ? {} : evaluated, `${path}.Properties`) as Json;
      const created = createResource(this.world.state, {
        logicalId, type, properties, env: this.env, partition: this.partition, where: path,
      });
      this.resources.set(logicalId, { logicalId, type, properties, created });
    }
    const outputs: Record<string, unknown> = {};
    for (const [name, output] of Object.entries((this.template.Outputs ?? {}) as Record<string, Json>)) {
      const path = `${where}/Outputs/${name}`;
      if (typeof output.Condition === 'string' && !this.condition(output.Condition, path)) {
        continue;
      }
      const value = this.evaluate(output.Value, `${path}.Value`);
      outputs[name] = value;
      if (output.Export !== undefined) {
        const exportName = this.evaluate((output.Export as Json).Name, `${path}.Export.Name`);
        if (typeof exportName !== 'string') {
          throw new DeployError(`${path}: export name must be a string`);
        }
        const key = exportKey(this.env.account, this.env.region, exportName);
        if (this.world.state.exports.has(key)) {
          throw new DeployError(`${path}: export ${exportName} already exported by another stack`);
        }
        this.world.state.exports.set(key, value);
      }
    }
    return {
      env: this.env, partition: this.partition, template: this.template, resources: this.resources, outputs,
      dynamicReferenceCount: count,
    };
  }

  /** Resources in an order CloudFormation could create them: every dependency first. */
  private creationOrder(): string[] {
    const order: string[] = [];
    const state = new Map<string, 'visiting' | 'done'>();
    const visit = (id: string, from: string) => {
      if (!(id in this.templateResources)) {
        throw new DeployError(`${this.env.stackName}/${from}: refers to ${id}, which is not a resource of this template`);
      }
      const s = state.get(id);
      if (s === 'done') {
        return;
      }
      if (s === 'visiting') {
        throw new DeployError(`${this.env.stackName}: circular dependency through ${id}`);
      }
      state.set(id, 'visiting');
      for (const dependency of this.dependenciesOf(id)) {
        visit(dependency, id);
      }
      state.set(id, 'done');
      order.push(id);
    };
    for (const id of Object.keys(this.templateResources)) {
      visit(id, id);
    }
    return order;
  }

  private dependenciesOf(id: string): Set<string> {
    const resource = this.templateResources[id];
    const out = new Set<string>();
    for (const d of asList(resource.DependsOn)) {
      out.add(String(d));
    }
    const walk = (node: unknown) => {
      if (Array.isArray(node)) {
        node.forEach(walk);
      } else if (node && typeof node === 'object') {
        for (const [key, value] of Object.entries(node as Json)) {
          if (key === 'Ref' && typeof value === 'string' && value in this.templateResources) {
            out.add(value);
          } else if (key === 'Fn::GetAtt') {
            const [target] = getAttArgs(value);
            if (typeof target === 'string') {
              out.add(target);
            }
          } else if (key === 'Fn::Sub') {
            const text = Array.isArray(value) ? value[0] : value;
            const locals = Array.isArray(value) ? Object.keys((value[1] ?? {}) as Json) : [];
            for (const name of subVariables(String(text))) {
              const base = name.split('.')[0];
              if (!locals.includes(base) && base in this.templateResources) {
                out.add(base);
              }
            }
          }
          walk(value);
        }
      }
    };
    walk(resource.Properties);
    return out;
  }

  private condition(name: string, path: string): boolean {
    const known = this.conditions.get(name);
    if (known !== undefined) {
      return known;
    }
    const definition = ((this.template.Conditions ?? {}) as Json)[name];
    if (definition === undefined) {
      throw new DeployError(`${path}: condition ${name} is not defined`);
    }
    const value = this.evaluate(definition, `${this.env.stackName}/Conditions/${name}`);
    if (typeof value !== 'boolean') {
      throw new DeployError(`${path}: condition ${name} does not evaluate to true or false`);
    }
    this.conditions.set(name, value);
    return value;
  }

  /** Evaluates a template value; throws on anything CloudFormation would not accept. */
  evaluate(node: unknown, path: string): unknown {
    if (Array.isArray(node)) {
      return node.map((v, i) => this.evaluate(v, `${path}[${i}]`)).filter((v) => v !== NO_VALUE);
    }
    if (node === null || typeof node !== 'object') {
      return node;
    }
    const object = node as Json;
    const keys = Object.keys(object);
    if (keys.length === 1 && INTRINSICS.has(keys[0])) {
      return this.intrinsic(keys[0], object[keys[0]], `${path}.${keys[0]}`);
    }
    const out: Json = {};
    for (const [key, value] of Object.entries(object)) {
      const v = this.evaluate(value, `${path}.${key}`);
      if (v !== NO_VALUE) {
        out[key] = v;
      }
    }
    return out;
  }

  private intrinsic(name: string, args: unknown, path: string): unknown {
    switch (name) {
      case 'Ref':
        return this.ref(args, path);
      case 'Fn::GetAtt': {
        const [target, attribute] = getAttArgs(args).map((a) => this.evaluate(a, path));
        return this.getAtt(String(target), String(attribute), path);
      }
      case 'Fn::Join': {
        const [delimiter, list] = expectArgs(args, 2, path);
        const items = this.evaluate(list, path);
        if (typeof delimiter !== 'string' || !Array.isArray(items)) {
          throw new DeployError(`${path}: Fn::Join needs a delimiter and a list`);
        }
        return items.map((item, i) => scalarText(item, `${path}[${i}]`)).join(delimiter);
      }
      case 'Fn::Select': {
        const [indexArg, listArg] = expectArgs(args, 2, path);
        const index = Number(this.evaluate(indexArg, path));
        const list = this.evaluate(listArg, path);
        if (!Array.isArray(list)) {
          throw new DeployError(`${path}: Fn::Select needs a list, got ${JSON.stringify(list)}`);
        }
        if (!Number.isInteger(index) || index < 0 || index >= list.length) {
          throw new DeployError(
            `${path}: Fn::Select index ${index} is out of range for a list of ${list.length} element(s): ${JSON.stringify(list)}`,
          );
        }
        return list[index];
      }
      case 'Fn::Split': {
        const [delimiter, source] = expectArgs(args, 2, path);
        const text = this.evaluate(source, path);
        if (typeof delimiter !== 'string' || delimiter === '' || typeof text !== 'string') {
          throw new DeployError(`${path}: Fn::Split needs a non-empty delimiter and a string, got ${JSON.stringify(text)}`);
        }
        return text.split(delimiter);
      }
      case 'Fn::Sub':
        return this.sub(args, path);
      case 'Fn::If': {
        const [condition, whenTrue, whenFalse] = expectArgs(args, 3, path);
        return this.condition(String(condition), path) ? this.evaluate(whenTrue, path) : this.evaluate(whenFalse, path);
      }
      case 'Fn::Equals': {
        const [a, b] = expectArgs(args, 2, path).map((v) => this.evaluate(v, path));
        return JSON.stringify(a) === JSON.stringify(b);
      }
      case 'Fn::And':
        return asList(args).every((c) => this.truth(c, path));
      case 'Fn::Or':
        return asList(args).some((c) => this.truth(c, path));
      case 'Fn::Not':
        return !this.truth(expectArgs(args, 1, path)[0], path);
      case 'Condition':
        return this.condition(String(args), path);
      case 'Fn::ImportValue': {
        const exportName = this.evaluate(args, path);
        const key = exportKey(this.env.account, this.env.region, String(exportName));
        if (!this.world.state.exports.has(key)) {
          throw new DeployError(
            `${path}: no export named ${String(exportName)} in account ${this.env.account}, ${this.env.region} `
            + '(exports are per account and region; deploy the exporting stack first)',
          );
        }
        this.world.state.importedExports.add(key);
        return this.world.state.exports.get(key);
      }
      case 'Fn::GetAZs': {
        const region = this.evaluate(args, path);
        return zonesOf(this.env.account, region === '' ? this.env.region : String(region)).map((z) => z.name);
      }
      case 'Fn::FindInMap': {
        const [map, top, second] = expectArgs(args, 3, path).map((v) => String(this.evaluate(v, path)));
        const value = ((((this.template.Mappings ?? {}) as Json)[map] as Json | undefined)?.[top] as Json | undefined)?.[second];
        if (value === undefined) {
          throw new DeployError(`${path}: Fn::FindInMap ${map}/${top}/${second} is not in the template's Mappings`);
        }
        return value;
      }
      case 'Fn::Base64':
        return Buffer.from(scalarText(this.evaluate(args, path), path)).toString('base64');
      default:
        throw new DeployError(`${path}: ${name} is not supported by the deploy-time evaluator (add it)`);
    }
  }

  private truth(node: unknown, path: string): boolean {
    const value = this.evaluate(node, path);
    if (typeof value !== 'boolean') {
      throw new DeployError(`${path}: condition function needs true or false, got ${JSON.stringify(value)}`);
    }
    return value;
  }

  private pseudo(name: string): string | undefined {
    switch (name) {
      case 'AWS::AccountId': return this.env.account;
      case 'AWS::Region': return this.env.region;
      case 'AWS::Partition': return this.partition.partition;
      case 'AWS::URLSuffix': return this.partition.dnsSuffix;
      case 'AWS::StackName': return this.env.stackName;
      case 'AWS::StackId':
        return `arn:${this.partition.partition}:cloudformation:${this.env.region}:${this.env.account}:stack/${this.env.stackName}/`
          + hashText(`stack/${this.env.account}/${this.env.stackName}`, 8) + '-0a1b-11ef-8c3d-0e1f2a3b4c5d';
      default: return undefined;
    }
  }

  private ref(args: unknown, path: string): unknown {
    const name = String(args);
    if (name === 'AWS::NoValue') {
      return NO_VALUE;
    }
    const pseudo = this.pseudo(name);
    if (pseudo !== undefined) {
      return pseudo;
    }
    const parameter = ((this.template.Parameters ?? {}) as Record<string, Json>)[name];
    if (parameter !== undefined) {
      if (parameter.Default === undefined) {
        throw new DeployError(`${path}: parameter ${name} has no value (no default, none passed)`);
      }
      return parameter.Default;
    }
    return this.created(name, path).ref;
  }

  private created(logicalId: string, path: string): CreatedResource {
    const resource = this.resources.get(logicalId);
    if (!resource) {
      if (logicalId in this.templateResources) {
        throw new DeployError(`${path}: ${logicalId} is not created (its condition is false)`);
      }
      throw new DeployError(`${path}: ${logicalId} is neither a resource, a parameter nor a pseudo parameter`);
    }
    return resource.created;
  }

  private getAtt(logicalId: string, attribute: string, path: string): unknown {
    const created = this.created(logicalId, path);
    if (!(attribute in created.attributes)) {
      const type = this.resources.get(logicalId)?.type;
      throw new DeployError(
        `${path}: ${logicalId} (${type}) has no attribute ${attribute} at deploy time`
        + ` (it has: ${Object.keys(created.attributes).slice(0, 12).join(', ') || 'none'})`,
      );
    }
    return created.attributes[attribute];
  }

  private sub(args: unknown, path: string): string {
    const [text, variables] = Array.isArray(args) ? args : [args, {}];
    if (typeof text !== 'string') {
      throw new DeployError(`${path}: Fn::Sub needs a string`);
    }
    const locals: Json = {};
    for (const [k, v] of Object.entries((variables ?? {}) as Json)) {
      locals[k] = this.evaluate(v, `${path}.${k}`);
    }
    return text.replace(/\$\{(!?)([^}]*)\}/g, (_match, bang: string, name: string) => {
      if (bang === '!') {
        return `\${${name}}`;
      }
      if (name in locals) {
        return scalarText(locals[name], `${path}.\${${name}}`);
      }
      if (name.includes('.') && !name.startsWith('AWS::')) {
        const [id, ...rest] = name.split('.');
        return scalarText(this.getAtt(id, rest.join('.'), path), `${path}.\${${name}}`);
      }
      return scalarText(this.ref(name, path), `${path}.\${${name}}`);
    });
  }

  /** Replaces `{{resolve:secretsmanager:…}}` in every string, as CloudFormation does before a create. */
  private resolveDynamicReferences(node: unknown, path: string): unknown {
    if (typeof node === 'string') {
      return node.replace(DYNAMIC_REFERENCE, (_m, service: string, rest: string) => this.dynamicReference(service, rest, path));
    }
    if (Array.isArray(node)) {
      return node.map((v, i) => this.resolveDynamicReferences(v, `${path}[${i}]`));
    }
    if (node && typeof node === 'object') {
      const out: Json = {};
      for (const [k, v] of Object.entries(node as Json)) {
        out[k] = this.resolveDynamicReferences(v, `${path}.${k}`);
      }
      return out;
    }
    return node;
  }

  private dynamicReference(service: string, rest: string, path: string): string {
    if (service !== 'secretsmanager') {
      throw new DeployError(`${path}: dynamic reference to ${service} is not modelled (only secretsmanager)`);
    }
    const parts = rest.split(':');
    // The secret id is a name or a whole ARN (arn:partition:secretsmanager:region:account:secret:name).
    const idLength = parts[0] === 'arn' ? 7 : 1;
    const secretId = parts.slice(0, idLength).join(':');
    const [field = 'SecretString', jsonKey = '', stage = '', versionId = ''] = parts.slice(idLength);
    if (field !== 'SecretString') {
      throw new DeployError(`${path}: {{resolve:secretsmanager:${rest}}}: only SecretString can be referenced`);
    }
    if (stage !== '' && stage !== 'AWSCURRENT') {
      throw new DeployError(`${path}: secret ${secretId} has no version stage ${stage}`);
    }
    if (versionId !== '') {
      throw new DeployError(`${path}: secret ${secretId} has no version id ${versionId}`);
    }
    const secret = this.world.state.findSecret(secretId, this.env);
    if (!secret) {
      throw new DeployError(
        `${path}: {{resolve:secretsmanager:${secretId}}}: no such secret visible from ${this.env.account}/${this.env.region}`
        + ' (another account\'s secret must be named by its complete ARN)',
      );
    }
    this.world.state.assertSecretReadable(secret, this.env.account, path);
    if (jsonKey === '') {
      return secret.secretString;
    }
    let value: unknown;
    try {
      value = (JSON.parse(secret.secretString) as Json)[jsonKey];
    } catch {
      throw new DeployError(`${path}: secret ${secretId} is not JSON, so it has no key ${jsonKey}`);
    }
    if (value === undefined) {
      throw new DeployError(`${path}: secret ${secretId} has no key ${jsonKey}`);
    }
    return scalarText(value, path);
  }
}

function exportKey(account: string, region: string, name: string): string {
  return `${account}/${region}/${name}`;
}

function asList(value: unknown): unknown[] {
  if (value === undefined) {
    return [];
  }
  return Array.isArray(value) ? value : [value];
}

function expectArgs(args: unknown, count: number, path: string): unknown[] {
  if (!Array.isArray(args) || args.length !== count) {
    throw new DeployError(`${path}: expects ${count} argument(s), got ${JSON.stringify(args)}`);
  }
  return args;
}

function getAttArgs(args: unknown): unknown[] {
  if (typeof args === 'string') {
    const dot = args.indexOf('.');
    return [args.slice(0, dot), args.slice(dot + 1)];
  }
  return Array.isArray(args) ? args : [];
}

/** CloudFormation joins and substitutes strings (numbers pass as their text); lists and objects are errors. */
function scalarText(value: unknown, path: string): string {
  if (typeof value === 'string') {
    return value;
  }
  if (typeof value === 'number' || typeof value === 'boolean') {
    return String(value);
  }
  throw new DeployError(`${path}: expected a string, got ${JSON.stringify(value)}`);
}

function subVariables(text: string): string[] {
  return [...text.matchAll(/\$\{([^!}][^}]*)\}/g)].map((m) => m[1]);
}
