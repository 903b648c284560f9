// Preloaded with --import: this process reports itself as Node 20 (the one Debian 12 ships).
Object.defineProperty(process.versions, 'node', { value: '20.20.2' });
