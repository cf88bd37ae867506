export * from './contract';
export { createDirectorRpcClient, DirectorRpcClient, DirectorRpcRefusedError, DirectorsUnavailableError, splitBatches, type DirectorRpcClientOptions, type JobResult } from './client';
export { directorRpcClientEnv, directorRpcClientSchema, refineDirectorRpcClientEnv, rpcToken, type DirectorRpcClientConfig } from './config';
export { DnsDiscovery, parseServiceName, staticDiscovery, type DirectorDiscovery, type DnsDiscoveryOptions, type Resolve4 } from './discovery';
