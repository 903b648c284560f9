import { definePlugin, type KotoConfig } from 'koto-voice';
import { Notifier, sessionNotice } from './notify.ts';
import { Sounds } from './player.ts';

/** Sessions whose config snapshot is remembered for sessionEnd; a recording never stopped must not grow this forever. */
const MAX_TRACKED = 64;

/**
 * feedback: what a user hears and sees without looking at a terminal — a cue when the
 * microphone opens and closes and when a dictation fails (`feedback.sounds`), and a desktop
 * notification when one failed or delivered less than asked (`feedback.notify`). Both are off by
 * default, and then this plugin starts no process and writes no file.
 *
 * Each event reads the config its session started with, so an edited config applies from the
 * next session without a restart. Nothing here is awaited by a session or can fail one.
 */
export default definePlugin({
  name: 'feedback',
  apply(api) {
    const sounds = new Sounds(api);
    const notifier = new Notifier(api);
    const configs = new Map<string, KotoConfig>();
    const guard = (what: string, fn: () => void) => {
      try {
        fn();
      } catch (err) {
        api.log.debug(`${what}: ${String(err)}`);
      }
    };

    // Tone files and the player are ready before the first recording: the cue itself only spawns.
    api.hooks.ready.tapPromise('feedback', ({ config }) => sounds.prepare(config));
    api.hooks.configChanged.tap('feedback', ({ config }) => void sounds.prepare(config));

    api.hooks.recording.tap('feedback', (event) =>
      guard('recording', () => sounds.play(event.state === 'started' ? 'start' : 'stop', event.session.config)),
    );

    // sessionEnd has the record but not the session: keep each session's snapshot until it ends.
    api.hooks.sessionBegin.tap('feedback', (session) => {
      configs.delete(session.id);
      configs.set(session.id, session.config);
      if (configs.size > MAX_TRACKED) configs.delete(configs.keys().next().value!);
    });

    api.hooks.sessionEnd.tapPromise('feedback', async (record) => {
      const snapshot = configs.get(record.id);
      configs.delete(record.id);
      guard('sessionEnd', () => {
        const config = snapshot ?? api.config();
        if (record.state === 'failed') sounds.play('error', config);
        if (!config.feedback.notify) return;
        const notice = sessionNotice(record, (text) => api.scrub(text));
        if (notice) notifier.send(notice);
      });
    });
  },
});

export { Sounds, cueSource, PLAYERS, BUILTIN } from './player.ts';
export { Notifier, sessionNotice, appleScriptString, escapeMarkup, oneLine, notifySendArgs, osascriptArgs } from './notify.ts';
export type { Notice } from './notify.ts';
export { toneSamples, toneWav, writeTones, TONES, TONE_RATE, CUE_KINDS } from './tones.ts';
export type { CueKind } from './tones.ts';
export { findOnPath, ProcessSlot } from './process.ts';
