/** A private X server for benches (Xvfb picks a free display itself: -displayfd). */
import { spawn } from 'node:child_process';

export interface Xvfb {
  readonly display: string;
  stop(): Promise<void>;
}

export function startXvfb(): Promise<Xvfb> {
  return new Promise((resolve, reject) => {
    const child = spawn('Xvfb', ['-displayfd', '3', '-screen', '0', '1024x768x24', '-nolisten', 'tcp'], {
      stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('Xvfb did not start within 10 s'));
    }, 10_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    let text = '';
    (child.stdio[3] as NodeJS.ReadableStream).setEncoding('utf8').on('data', (chunk: string) => {
      text += chunk;
      if (!text.includes('\n')) return;
      clearTimeout(timer);
      resolve({
        display: `:${text.trim()}`,
        stop: () =>
          new Promise<void>((done) => {
            if (child.exitCode !== null) return done();
            child.once('exit', () => done());
            child.kill('SIGTERM');
          }),
      });
    });
  });
}
