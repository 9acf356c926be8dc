// Jest runs the CDK unit tests from the repository root (`npm test`).
// isolatedModules (tsconfig) keeps ts-jest fast; `npm run build` (tsc --noEmit) does the type checking.
/** @type {import('jest').Config} */
module.exports = {
  rootDir: __dirname,
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.tsx?$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.json' }],
  },
  // Synthesizing the stacks with cdk-nag takes a while on a 2-core machine.
  testTimeout: 120000,
  // Two cores: run two synthesizing test files at a time.
  maxWorkers: 2,
};
