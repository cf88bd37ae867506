import type { StartContext, Started } from './components';

// Placeholder until DynamoDB Local is wired into the harness (Foundation B).
export async function startDynamoDbLocal(_ctx: StartContext): Promise<Started> {
  throw new Error('dynamodb: not available in the harness yet');
}
