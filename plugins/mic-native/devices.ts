import { micError } from './errors.ts';

/** A capture device as one backend reports it. */
export interface BackendDevice {
  /** The name users see and configure (PulseAudio/PipeWire: the description, e.g. `Virtual_Microphone`). */
  readonly name: string;
  /** What the backend opens: PvRecorder's index, a PulseAudio source name, an ALSA PCM name… */
  readonly id: string | number;
  /** A second name it is also known by (the PulseAudio source name, the ALSA description). */
  readonly description?: string | undefined;
  readonly isDefault: boolean;
  /** Only `input` devices are listed; `null` devices are refused even when named explicitly. */
  readonly kind: 'input' | 'monitor' | 'null' | 'plugin';
}

const NULL_PATTERNS = [/discard all samples/i, /^null(?:\s+(?:input|output|source|sink|device))?$/i];
const PLUGIN_PATTERNS = [/^rate converter plugin/i, /^plugin (?:for|using) /i];

/** A device that records nothing: ALSA's `null`, PulseAudio's "Null Input", … */
export function isNullDeviceName(text: string | undefined): boolean {
  return text !== undefined && NULL_PATTERNS.some((re) => re.test(text.trim()));
}

/** Sorts a device known only by its name (as PvRecorder reports them) into a kind. */
export function kindOfName(name: string): BackendDevice['kind'] {
  if (/^monitor of /i.test(name)) return 'monitor';
  if (isNullDeviceName(name)) return 'null';
  if (PLUGIN_PATTERNS.some((re) => re.test(name))) return 'plugin';
  return 'input';
}

/** The devices worth offering: real inputs, no monitors, null devices or ALSA helper plugins. */
export function inputDevices(devices: readonly BackendDevice[]): BackendDevice[] {
  return devices.filter((d) => d.kind === 'input');
}

export type Selection = { readonly kind: 'default' } | { readonly kind: 'device'; readonly device: BackendDevice };

export function isDefaultName(wanted: string | undefined): boolean {
  const w = (wanted ?? '').trim().toLowerCase();
  return w === '' || w === 'default' || w === '@default_source@';
}

/**
 * Picks the device `wanted` names: `default` (or empty) is the system default; otherwise an exact
 * name, then a case-insensitive exact name, then a case-insensitive substring of an input's name.
 * Null devices are refused; an unknown or ambiguous name is one clear error listing the inputs.
 */
export function selectDevice(devices: readonly BackendDevice[], wanted: string | undefined): Selection {
  if (isDefaultName(wanted)) return { kind: 'default' };
  const want = wanted!.trim();
  const lower = want.toLowerCase();
  // Indices are not stable, so only string ids (source / PCM names) count as names.
  const names = (d: BackendDevice) => [d.name, d.description, typeof d.id === 'string' ? d.id : undefined].filter((n): n is string => !!n);
  const pick = (device: BackendDevice): Selection => {
    if (device.kind === 'null' || isNullDeviceName(device.name) || isNullDeviceName(device.description)) {
      throw micError('null-device', { device: device.name });
    }
    return { kind: 'device', device };
  };
  const exact = devices.find((d) => names(d).includes(want));
  if (exact) return pick(exact);
  const exactCi = devices.filter((d) => names(d).some((n) => n.toLowerCase() === lower));
  if (exactCi.length === 1) return pick(exactCi[0]!);
  const inputs = inputDevices(devices);
  const partial = inputs.filter((d) => names(d).some((n) => n.toLowerCase().includes(lower)));
  if (partial.length === 1) return pick(partial[0]!);
  if (partial.length > 1) {
    throw micError('device-ambiguous', { device: want, matches: partial.map((d) => `"${d.name}"`).join(', ') });
  }
  if (isNullDeviceName(want) || devices.some((d) => d.kind === 'null' && names(d).some((n) => n.toLowerCase().includes(lower)))) {
    throw micError('null-device', { device: want });
  }
  throw micError('device-not-found', {
    device: want,
    available: inputs.length ? inputs.map((d) => `"${d.name}"`).join(', ') : 'none',
  });
}
