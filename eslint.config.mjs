// Lints the TypeScript CDK app (cdk/). Rust and scripts have their own linters.
import eslint from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/**', 'cdk.out/**', '**/*.js', '**/*.d.ts', 'target/**'] },
  eslint.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['cdk/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-console': 'off',
      eqeqeq: ['error', 'always'],
    },
  },
);
