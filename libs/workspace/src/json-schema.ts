import Ajv from 'ajv';

/**
 * Why `schema` is not a valid draft-07 JSON Schema (ajv's meta-schema, then compilation, which
 * also catches unresolvable `$ref`s), or undefined. A fresh Ajv per call: a schema's `$id` may
 * come back in the next version of the file.
 */
export function jsonSchemaProblem(schema: unknown): string | undefined {
  const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: false });
  if (!ajv.validateSchema(schema as object)) return ajv.errorsText(ajv.errors, { dataVar: 'schema' });
  try {
    ajv.compile(schema as object);
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
  return undefined;
}
