/** A KV entry as Consul returns it, with `Value` decoded from base64 to UTF-8 (null when empty). */
export interface KvEntry {
  Key: string;
  Value: string | null;
  Flags: number;
  /** The session holding the key, if any. */
  Session?: string;
  /** How many times the key was acquired; reset to 0 when the key is recreated. */
  LockIndex: number;
  CreateIndex: number;
  ModifyIndex: number;
}
