/** The one rule for what is secret (src/kernel/secrets.ts), as a table. */
import { describe, expect, it } from 'vitest';
import { isSecretName, redactConfig, scrubSecrets, secretsFromEnv, secretValuesIn } from '../../src/kernel/secrets.ts';

describe('isSecretName', () => {
  const secret = [
    'apiKey',
    'api_key',
    'api-key',
    'APIKey',
    'apikey',
    'x-api-key',
    'X-Api-Key',
    'Ocp-Apim-Subscription-Key',
    'subscription-key',
    'subscriptionkey',
    'key',
    'token',
    'accessToken',
    'access_token',
    'accesstoken',
    'refreshToken',
    'clientSecret',
    'client_secret',
    'AZURE_CLIENT_SECRET',
    'secret',
    'password',
    'passwd',
    'authorization',
    'Authorization',
    'proxy-authorization',
    'credential',
    'credentials',
    'cookie',
    'sig',
    'signature',
    'x-goog-signature',
    'OPENAI_API_KEY',
    'GITHUB_TOKEN',
    'sasToken',
  ];
  const plain = [
    'keywords',
    'keepAliveMs',
    'maxTokens',
    'maxTokensParam',
    'max_tokens',
    'api-version',
    'baseUrl',
    'model',
    'hotkey',
    'keyboard',
    'tokenizers',
    'signal',
    'design',
    'PWD',
    'SSH_AUTH_SOCK',
    'XAUTHORITY',
    'GNOME_KEYRING_CONTROL',
    'monkey',
    'use',
    'type',
  ];
  for (const name of secret) it(`${name} is secret`, () => expect(isSecretName(name)).toBe(true));
  for (const name of plain) it(`${name} is not`, () => expect(isSecretName(name)).toBe(false));
});

describe('scrubSecrets', () => {
  it('removes known values, raw and URL-encoded', () => {
    expect(scrubSecrets('key sk-abcdef and sk%2Babc', ['sk-abcdef', 'sk+abc'])).toBe('key [redacted] and [redacted]');
  });

  it('removes secret query parameters of any URL, keeping the others', () => {
    expect(scrubSecrets('GET https://acct.blob.core.windows.net/c/a.wav?sv=2024-01-01&se=2030&sig=AbC%2Bd%3D&sp=r failed')).toBe(
      'GET https://acct.blob.core.windows.net/c/a.wav?sv=2024-01-01&se=2030&sig=[redacted]&sp=r failed',
    );
    expect(scrubSecrets('https://x.openai.azure.com/openai/deployments/w?api-version=2024-10-21&api-key=abcd1234')).toBe(
      'https://x.openai.azure.com/openai/deployments/w?api-version=2024-10-21&api-key=[redacted]',
    );
    expect(scrubSecrets('/v1/listen?token=t0k3n-value&model=nova')).toBe('/v1/listen?token=[redacted]&model=nova');
  });

  it('removes bearer tokens, URL passwords and "name": "value" pairs with secret names', () => {
    expect(scrubSecrets('Authorization: Bearer eyJhbGciOi.J9x1y2z3')).toBe('Authorization: Bearer [redacted]');
    expect(scrubSecrets('proxy https://me:hunter2@proxy.example:8080/')).toBe('proxy https://me:[redacted]@proxy.example:8080/');
    expect(scrubSecrets('{"clientSecret":"abc","model":"m","password": "x y"}')).toBe(
      '{"clientSecret":"[redacted]","model":"m","password": "[redacted]"}',
    );
  });

  it('leaves prose alone', () => {
    for (const text of [
      'uses a Bearer token',
      'basic authentication failed',
      'maxTokens=1024',
      'https://h/v1/models?limit=5',
      'the key path providers.main.apiKey: must not be empty',
    ]) {
      expect(scrubSecrets(text)).toBe(text);
    }
  });
});

describe('secretValuesIn and redactConfig', () => {
  const config = {
    providers: {
      main: {
        baseUrl: 'https://h.example/v1?sig=SIG-value-1&sv=2024',
        apiKey: 'sk-main-123456',
        headers: { 'x-api-key': 'hdr-123456', 'x-trace': 'trace-1' },
        query: { sig: 'q-sig-123456' },
        keywords: 'auto',
        auth: { type: 'entra', credential: 'default' },
      },
    },
    pluginOptions: { mine: { clientSecret: 'cs-123456', password: 4242, secrets: { a: 'nested-secret-1' } } },
    correction: { maxTokens: 1024, maxTokensParam: 'max_completion_tokens' },
  };

  it('collects every credential value (not plain words like `default` or `auto`)', () => {
    expect(secretValuesIn(config).sort()).toEqual(
      ['4242', 'SIG-value-1', 'cs-123456', 'hdr-123456', 'nested-secret-1', 'q-sig-123456', 'sk-main-123456'].sort(),
    );
  });

  it('redacts by name at any depth (numbers too), and secret query parameters inside other values', () => {
    expect(redactConfig(config)).toEqual({
      providers: {
        main: {
          baseUrl: 'https://h.example/v1?sig=[redacted]&sv=2024',
          apiKey: '[redacted]',
          headers: { 'x-api-key': '[redacted]', 'x-trace': 'trace-1' },
          query: { sig: '[redacted]' },
          keywords: 'auto',
          auth: { type: 'entra', credential: '[redacted]' },
        },
      },
      pluginOptions: { mine: { clientSecret: '[redacted]', password: '[redacted]', secrets: { a: '[redacted]' } } },
      correction: { maxTokens: 1024, maxTokensParam: 'max_completion_tokens' },
    });
  });

  it('environment variables named like credentials', () => {
    expect(
      secretsFromEnv({
        OPENAI_API_KEY: 'sk-env-123456',
        HOME: '/home/me',
        PWD: '/work',
        FLAG_TOKEN: 'true',
        NPM_TOKEN: 'npm_abc123',
      }).sort(),
    ).toEqual(['npm_abc123', 'sk-env-123456']);
  });
});
