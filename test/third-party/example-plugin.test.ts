/**
 * The example third-party plugin's own test files (examples/koto-plugin-deepgram/test), run
 * here against Koto's source so the main suite and CI cover them. In the example's folder,
 * `npm install && npm test` runs the same files against an installed koto-voice.
 */
import '../../examples/koto-plugin-deepgram/test/conformance.test.ts';
import '../../examples/koto-plugin-deepgram/test/wire.test.ts';
