import { rowChangingStatements, splitSqlStatements } from './mysql';

describe('splitSqlStatements', () => {
  it('splits a multi-statement query on top-level semicolons', () => {
    expect(splitSqlStatements('START TRANSACTION; SELECT id FROM leases LOCK IN SHARE MODE; INSERT INTO t VALUES (1);')).toEqual([
      'START TRANSACTION',
      'SELECT id FROM leases LOCK IN SHARE MODE',
      'INSERT INTO t VALUES (1)',
    ]);
  });

  it('keeps semicolons inside quoted strings and identifiers, with both escape forms', () => {
    const sql = `INSERT INTO t VALUES ('a;b', 'it''s; fine', 'back\\'slash;', "dq;"); SELECT \`we;ird\` FROM t`;
    expect(splitSqlStatements(sql)).toEqual([
      `INSERT INTO t VALUES ('a;b', 'it''s; fine', 'back\\'slash;', "dq;")`,
      'SELECT `we;ird` FROM t',
    ]);
  });

  it('returns a single statement unchanged and nothing for blanks', () => {
    expect(splitSqlStatements('  SELECT 1 ')).toEqual(['SELECT 1']);
    expect(splitSqlStatements(' ; ')).toEqual([]);
  });
});

describe('rowChangingStatements', () => {
  it('flags every row-changing form and lets SELECT … FOR UPDATE through', () => {
    const changing = [
      'UPDATE jobs SET state = 1',
      'DELETE FROM jobs',
      'REPLACE INTO jobs VALUES (1)',
      'TRUNCATE jobs',
      'INSERT INTO jobs VALUES (1) ON DUPLICATE KEY UPDATE state = 2',
    ];
    const harmless = ['SELECT id FROM leases ORDER BY id DESC LIMIT 1 FOR UPDATE', 'INSERT INTO jobs VALUES (1)', 'SELECT 1'];
    expect(rowChangingStatements([...changing, ...harmless])).toEqual(changing);
  });
});
