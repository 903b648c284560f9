/**
 * koto-voice: the public API for applications (createKernel) and plugin authors (definePlugin).
 * Everything a built-in plugin uses is exported here; plugins import nothing else from Koto.
 */
// First: says "Node too old" before any dependency fails to load on it.
import './kernel/node-check.ts';
export { createKernel, Kernel } from './kernel/kernel.ts';
export type { KernelOptions, KernelState, KernelDiagnostics, PluginInfo } from './kernel/kernel.ts';
export { definePlugin, isPlugin } from './kernel/plugin.ts';
export type { KotoPlugin, AnyKotoPlugin, PluginDefinition, PluginApi, OutputSchemas, OutputOptionsOf } from './kernel/plugin.ts';
// The versioned provider contracts (`api.provide.*`): V1 is frozen, a V2 comes with an adapter.
export { PROVIDER_SPEC_VERSIONS } from './kernel/provider-spec.ts';
export type { AsrProviderV1, CorrectionProviderV1, OutputV1, AudioSourceV1, ProvideApi } from './kernel/provider-spec.ts';
export { STAGE } from './kernel/hooks.ts';
export type {
  KernelHooks,
  PluginHooks,
  TapOnly,
  AudioSourceRequest,
  AudioSourceHandle,
  AudioFrame,
  AudioDevice,
  AudioDevicesRequest,
} from './kernel/hooks.ts';
export { parseWav, encodeWav } from './audio/wav.ts';
export { fitUpload, formatBytes, type FitUploadOptions, type UploadPart, type UploadPlan } from './audio/fit-upload.ts';
export { resample, StreamingResampler, type ResamplerOptions } from './audio/resample.ts';
export { KotoError, kotoError, ERRORS, EXIT, describe as describeError, errorPrefixOf } from './kernel/errors.ts';
// Optional dependencies of koto-voice that an install may leave out: the one check and error.
export { dependencyMissing, isMissingModule, type DependencyMissing } from './kernel/dependencies.ts';
// The one rule for what is a credential, for plugins scrubbing their own error messages.
export { isSecretName, scrubSecrets, REDACTED } from './kernel/secrets.ts';
export type { ErrorCode, KotoErrorOptions, PluginErrorCode, PluginErrorSpec } from './kernel/errors.ts';
export type { KotoHttp } from './kernel/transport.ts';
export { isLoopbackHost } from './kernel/transport.ts';
export type { TransportStats, OriginStats } from './kernel/transport-stats.ts';
export type { KotoConfig, ResolvedConfig, OutputSelection } from './kernel/config/validate.ts';
export type { TransportConfig } from './kernel/config/schema.ts';
export type { Logger } from './kernel/logger.ts';
export type { KotoPaths } from './kernel/paths.ts';
export type {
  AudioInput,
  TranscribeOptions,
  TranscribeResult,
  CorrectOptions,
  CorrectResult,
  RunOptions,
  RunResult,
  Recording,
  RecordOptions,
} from './kernel/session.ts';
export type * from './kernel/types.ts';
export { KOTO_VERSION } from './kernel/version.ts';
export { parseDictionary } from './kernel/config/validate.ts';
// Plugins declare option schemas with the same zod the kernel validates with.
export { z } from 'zod';
export { pruneRecordings } from './kernel/retention.ts';
export type { RetentionLimits } from './kernel/retention.ts';
// Key combinations as users write them (hotkeys, paste shortcuts), with X11 keysyms and evdev codes.
export { parseKeyCombo, keyNamed, keyNames, MODIFIER_EVDEV, MODIFIER_ORDER } from './kernel/keys.ts';
export type { KeyCombo, KeyInfo, Modifier } from './kernel/keys.ts';
