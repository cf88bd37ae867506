// Adds up the results of every runner of scripts/test.sh into one `N passed, N failed` line.
// Inputs: jest --json files and `check` files (one line: "<name> passed|failed").
const fs = require('node:fs');
const path = require('node:path');

const dir = process.argv[2];
let passed = 0;
let failed = 0;
const rows = [];
for (const file of fs.readdirSync(dir).sort()) {
  const full = path.join(dir, file);
  if (file.endsWith('.json')) {
    const r = JSON.parse(fs.readFileSync(full, 'utf8'));
    // A suite that failed to load has no test results but must still count as a failure.
    const broken = r.numRuntimeErrorTestSuites ?? 0;
    passed += r.numPassedTests;
    failed += r.numFailedTests + broken;
    rows.push(`${file.replace(/\.json$/, '')}: ${r.numPassedTests} passed, ${r.numFailedTests + broken} failed`);
  } else if (file.endsWith('.check')) {
    const [name, outcome] = fs.readFileSync(full, 'utf8').trim().split(/\s+/);
    if (outcome === 'passed') passed += 1;
    else failed += 1;
    rows.push(`${name}: ${outcome}`);
  }
}
for (const row of rows) console.log(`  ${row}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
