/**
 * Cheap syntax check of FQL text: terminated strings and balanced brackets. The real parser
 * lives in transform; this catches the typos that would otherwise only surface at runtime.
 */
export function fqlSyntaxError(text: string): string | undefined {
  const closers: string[] = [];
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    // A backslash escapes the next character, inside strings and in field names.
    if (c === '\\') {
      i++;
      continue;
    }
    if (inString) {
      if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '(') closers.push(')');
    else if (c === '[') closers.push(']');
    else if (c === ')' || c === ']') {
      if (closers.pop() !== c) return `unexpected '${c}' at position ${i + 1}`;
    }
  }
  if (inString) return 'unterminated string';
  if (closers.length > 0) return `missing '${closers[closers.length - 1]}'`;
  return undefined;
}
