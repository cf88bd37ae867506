import type { StartContext, Started } from './components';

// Placeholder until S3Proxy is wired into the harness (Foundation B).
export async function startS3Proxy(_ctx: StartContext): Promise<Started> {
  throw new Error('s3: not available in the harness yet');
}
