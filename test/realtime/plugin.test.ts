import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeWav, parseWav } from '../../src/index.ts';
import { API_KEY, liveHarness, tone, type LiveHarness } from './helpers.ts';

let h: LiveHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const second = () => tone(1000, 1, 16_000, 0.5);

function uploads(harness: LiveHarness) {
  return harness.openai.requests.filter((r) => r.path.endsWith('/audio/transcriptions'));
}

function warnings(harness: LiveHarness): string[] {
  return harness.logs.filter((l) => l.level === 'warn').map((l) => l.message);
}

describe('openai-compatible with realtime: live recordings stream while the user speaks', () => {
  it('opens the socket at session start, streams every frame, and at stop takes the streamed transcript instead of uploading', async () => {
    h = await liveHarness(second);
    const interims: string[] = [];
    const recording = await h.kernel.record({ onInterim: (text, stage) => interims.push(`${stage}:${text}`) });
    // The socket is open and the audio arrives while the recording is still going.
    const rt = h.realtime;
    await expect.poll(() => rt.connections[0]?.audio().length ?? 0, { timeout: 30_000 }).toBeGreaterThan(40_000);
    expect(recording.state).toBe('recording');
    expect(rt.connections[0]!.sent.some((e) => e.type === 'conversation.item.input_audio_transcription.delta')).toBe(true);
    // Interim text reached the caller while the user was still speaking.
    await expect.poll(() => interims.length, { timeout: 30_000 }).toBeGreaterThan(0);
    expect(recording.state).toBe('recording');
    const beforeStop = interims.length;
    const record = await recording.stop();
    expect(beforeStop).toBeGreaterThan(0);

    expect(record.state).toBe('done');
    expect(record.raw).toBe('heard 24000 samples');
    expect(record.text).toBe('heard 24000 samples');
    expect(record.asrModel).toBe('gpt-4o-mini-transcribe');
    expect(uploads(h)).toHaveLength(0);
    // The stream's usage (each completed segment's) is the session's.
    expect(record.attempts?.[0]?.usage).toEqual({ audioSeconds: 1 });
    const connection = rt.connections[0]!;
    expect(connection.headers.authorization).toBe(`Bearer ${API_KEY}`);
    expect(connection.query.intent).toBe('transcription');
    expect(connection.problems).toEqual([]);
    const update = connection.events[0] as { session: { audio: { input: Record<string, unknown> } } };
    expect(update.session.audio.input).toMatchObject({
      format: { type: 'audio/pcm', rate: 24000 },
      transcription: { model: 'gpt-4o-mini-transcribe' },
      turn_detection: null,
    });
    expect(connection.audio().length).toBe(48_000);
    // The interims went out as they arrived; the final text follows through the same path.
    expect(interims[0]).toMatch(/^asr:w1( |$)/);
    expect(interims.at(-1)).toBe('asr:heard 24000 samples');
    // The recording is on disk all the same.
    const wav = parseWav(readFileSync(record.audioPath!));
    expect(wav.ok && wav.pcm?.samples.length).toBe(16_000);
    await expect.poll(() => connection.closed, { timeout: 30_000 }).toBe(true);
  });

  it('silence trimmed from the upload does not make the whole stream look incomplete: the streamed transcript is used', async () => {
    h = await liveHarness(() => Int16Array.from([...new Int16Array(32_000), ...tone(1000, 1, 16_000, 0.5), ...new Int16Array(16_000)]));
    const recording = await h.kernel.record();
    const rt = h.realtime;
    // 4 s captured at 16 kHz → 96,000 samples (192,000 bytes) at 24 kHz, the resampler's tail sent at stop.
    await expect.poll(() => rt.connections[0]?.audio().length ?? 0, { timeout: 30_000 }).toBeGreaterThan(180_000);
    const record = await recording.stop();
    expect(record.timings.trimmedMs).toBeGreaterThan(2000);
    expect(record.text).toBe('heard 96000 samples');
    expect(uploads(h)).toHaveLength(0);
    expect(warnings(h).join('\n')).not.toMatch(/uploading the recording instead/);
  });

  it('a socket that dies mid-session falls back to uploading the saved recording, which succeeds', async () => {
    h = await liveHarness(second, { dropAfterBytes: 20_000 });
    const recording = await h.kernel.record();
    const rt = h.realtime;
    await expect.poll(() => rt.connections[0]?.closed, { timeout: 30_000 }).toBe(true);
    const record = await recording.stop();
    expect(record.state).toBe('done');
    expect(record.text).toBe('hello world');
    // The whole recording was uploaded, not just what had been streamed.
    const posts = uploads(h);
    expect(posts).toHaveLength(1);
    const file = posts[0]!.form!.files['file']!;
    expect(Buffer.compare(file.data, Buffer.from(encodeWav(second(), 16_000)))).toBe(0);
    expect(warnings(h).join('\n')).toMatch(
      /realtime transcription failed, uploading the recording instead: .*closed before the transcript was complete/,
    );
  });

  it('a .failed transcription falls back to the upload', async () => {
    h = await liveHarness(second, { failTranscription: true });
    const record = await (await h.kernel.record()).stop();
    expect(record.text).toBe('hello world');
    expect(uploads(h)).toHaveLength(1);
    expect(warnings(h).join('\n')).toContain('The audio could not be transcribed. (audio_unintelligible)');
  });

  it('a socket that cannot open falls back to the upload; the key never shows in the warning', async () => {
    h = await liveHarness(second, { refuseStatus: 403 });
    const record = await (await h.kernel.record()).stop();
    expect(record.text).toBe('hello world');
    expect(uploads(h)).toHaveLength(1);
    const shown = warnings(h).join('\n');
    expect(shown).toMatch(/did not open/);
    expect(shown).not.toContain(API_KEY);
  });

  it('server VAD (hands-free) sends its turn detection and joins the segments', async () => {
    h = await liveHarness(second, { vadSegmentMs: 400 }, { turnDetection: { type: 'server_vad', silenceDurationMs: 600 } });
    const record = await (await h.kernel.record()).stop();
    const connection = h.realtime.connections[0]!;
    expect(connection.items.length).toBeGreaterThan(1);
    expect(record.raw).toBe(connection.items.map((item) => `heard ${item.bytes.length / 2} samples`).join(' '));
    const input = (connection.events[0] as { session: { audio: { input: Record<string, unknown> } } }).session.audio.input;
    expect(input.turn_detection).toEqual({ type: 'server_vad', silence_duration_ms: 600 });
    expect(uploads(h)).toHaveLength(0);
  });

  it('frames without their own rate get the rate of their source from the kernel: 48 kHz capture streams as 24 kHz', async () => {
    h = await liveHarness(() => tone(1000, 1, 48_000), {}, {}, { rate: 48_000 });
    const record = await (await h.kernel.record()).stop();
    expect(record.text).toBe('heard 24000 samples');
    expect(uploads(h)).toHaveLength(0);
  });

  it('frames that carry their rate (the proposed AudioFrame.sampleRate) are resampled from it: 48 kHz capture streams as 24 kHz', async () => {
    h = await liveHarness(() => tone(1000, 1, 48_000), {}, {}, { rate: 48_000, tagRate: true });
    const record = await (await h.kernel.record()).stop();
    expect(record.text).toBe('heard 24000 samples');
    expect(uploads(h)).toHaveLength(0);
  });

  it('files (run / transcribe) never open a socket; a provider without realtime never streams', async () => {
    h = await liveHarness(second);
    const result = await h.kernel.run({ data: encodeWav(second(), 16_000), name: 'clip.wav' });
    expect(result.text).toBe('hello world');
    expect(h.realtime.connections).toHaveLength(0);
    await h.close();

    h = await liveHarness(second, {}, false);
    const record = await (await h.kernel.record()).stop();
    expect(record.text).toBe('hello world');
    expect(h.realtime.connections).toHaveLength(0);
  });

  it('a cancelled recording closes its socket and uploads nothing', async () => {
    h = await liveHarness(second);
    const recording = await h.kernel.record();
    const rt = h.realtime;
    await expect.poll(() => rt.connections.length, { timeout: 30_000 }).toBe(1);
    await recording.cancel();
    expect(recording.state).toBe('cancelled');
    await expect.poll(() => rt.connections[0]!.closed, { timeout: 30_000 }).toBe(true);
    expect(rt.connections[0]!.events.some((e) => e.type === 'input_audio_buffer.commit')).toBe(false);
    expect(uploads(h)).toHaveLength(0);
  });
});
