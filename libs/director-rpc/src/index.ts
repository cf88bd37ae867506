export * from './contract';
export {
  createDirectorRpcClient,
  DirectorRpcClient,
  DirectorRpcRefusedError,
  DirectorsUnavailableError,
  splitBatches,
  type DirectorRpcClientOptions,
  type JobResult,
} from './client';
export {
  DnsDiscovery,
  parseServiceName,
  staticDiscovery,
  type DirectorDiscovery,
  type DnsDiscoveryOptions,
  type Resolve4,
} from './discovery';
