/**
 * Profiles: per-application settings chosen by the window that had the focus when a dictation
 * started. Each profile is validated at config load into a complete config of its own (the base
 * config with the profile's sections merged over it), so a session that uses one simply runs
 * with that snapshot, and every plugin sees the profile's settings through `session.config`.
 */
import type { KotoConfig } from './config/validate.ts';
import { kotoError } from './errors.ts';
import type { FocusedWindow } from './types.ts';

export interface ResolvedProfile {
  readonly name: string;
  readonly match: {
    /** Lower-cased window classes / app ids; empty: any application. */
    readonly app: readonly string[];
    /** The title regular expression's source; undefined or "": any title. */
    readonly title: string | undefined;
  };
  /** The base config with this profile's sections merged in, validated and frozen. */
  readonly config: KotoConfig;
}

/**
 * How much of a title is searched. A title is chosen by whoever controls the window (a web page
 * sets its browser tab's): bounding it keeps a backtracking pattern from stalling the key-down.
 */
export const TITLE_MATCH_LIMIT = 1024;

/** Whether `window` is one the profile is for: every condition given must hold. */
export function profileMatches(profile: ResolvedProfile, window: FocusedWindow): boolean {
  const { app, title } = profile.match;
  if (app.length > 0) {
    const names = [window.app, window.instance].filter((n): n is string => Boolean(n)).map((n) => n.toLowerCase());
    if (!names.some((name) => app.includes(name))) return false;
  }
  // Compiled per call: a frozen RegExp cannot keep lastIndex, and this runs once per dictation.
  return !title || new RegExp(title, 'u').test(window.title.slice(0, TITLE_MATCH_LIMIT));
}

/** The first profile that matches the window; none for an unknown window. */
export function matchProfile(profiles: readonly ResolvedProfile[], window: FocusedWindow | undefined): ResolvedProfile | undefined {
  return window ? profiles.find((profile) => profileMatches(profile, window)) : undefined;
}

/** The profile named `name` (`koto run --profile`), or KOTO_ERR_PROFILE_UNKNOWN listing the names. */
export function profileNamed(config: KotoConfig, name: string): ResolvedProfile {
  const found = config.resolved.profiles.find((profile) => profile.name === name);
  if (found) return found;
  const known = config.resolved.profiles.map((profile) => profile.name);
  throw kotoError('KOTO_ERR_PROFILE_UNKNOWN', { profile: name, known: known.join(', ') || 'none: the config has no `profiles`' });
}

/** Checks a title pattern the way profileMatches compiles it; the reason when it is not one. */
export function badPattern(source: string): string | undefined {
  try {
    new RegExp(source, 'u');
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * The profile a retry of a recorded session runs with: the one it used, if the config still has
 * it (renamed or removed since: the base config, as for a window no profile matches).
 */
export function retryProfile(config: KotoConfig, recorded: string | null | undefined): string | undefined {
  return recorded && config.resolved.profiles.some((profile) => profile.name === recorded) ? recorded : undefined;
}
