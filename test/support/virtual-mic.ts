/**
 * The virtual microphone for the audio tests (test/support/virtual-mic.sh): start it, the
 * environment its clients need, and playing a file into it as a person speaking would.
 */
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('./virtual-mic.sh', import.meta.url));

/** Starts the virtual microphone (idempotent) and returns PULSE_SERVER / PULSE_COOKIE for clients. */
export function startVirtualMic(): Record<string, string> {
  execFileSync('bash', [SCRIPT, 'start'], { stdio: 'ignore' });
  const text = execFileSync('bash', [SCRIPT, 'env'], { encoding: 'utf8' });
  return Object.fromEntries([...text.matchAll(/^export (\w+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!.replace(/^['"]|['"]$/g, '')]));
}

/** Plays a file into the virtual microphone; resolves when it has been played. */
export function playIntoMic(file: string, pulse: Record<string, string>): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('paplay', ['-d', 'virt_speaker', file], { env: { ...process.env, ...pulse }, stdio: 'ignore' });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`paplay exited ${code}`))));
  });
}
