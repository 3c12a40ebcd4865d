/**
 * `ferry-ftp/config`: run an embedded server from the daemon's YAML file.
 * A separate entry point, so that embedders who configure in code do not
 * load the YAML and schema libraries.
 */
export { loadConfig, type LoadOptions, type LoadedConfig, type ConfigOverride } from './load.js';
export { buildServerOptions, type BuildOptions } from './build.js';
export type { Config } from './schema.js';
export { ConfigError } from './validate.js';
