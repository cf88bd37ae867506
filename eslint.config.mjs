import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', '.cache/**', '.infra/**', '.tools/**', 'charts/*/templates/**', 'charts/*/charts/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node, ...globals.jest } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-require-imports': 'off',
      'no-console': 'error',
    },
  },
  {
    // Pages served as they are (no build): browser scripts.
    files: ['services/*/public/**/*.js'],
    languageOptions: { sourceType: 'script', globals: { ...globals.browser } },
  },
  {
    // CLIs, scripts and test fixtures talk to a terminal.
    files: ['**/cli.ts', 'scripts/**', '**/*.test.ts', '**/fixtures/**', '**/bench/**'],
    rules: { 'no-console': 'off' },
  },
);
