import type { PluginErrorCode, PluginErrorSpec } from 'koto-voice';

/**
 * The plugin's own codes (`definePlugin({ errors })`): situations only Azure has. They were the
 * kernel's KOTO_ERR_DEPLOYMENT_NOT_FOUND and KOTO_ERR_AUTH_TOKEN; like every plugin code they
 * make a provider chain fail over to the next provider, as those did.
 */
export const DEPLOYMENT_NOT_FOUND = {
  message: 'provider "{provider}": deployment "{deployment}" does not exist on {endpoint} (Azure DeploymentNotFound, used for {what})',
  fix:
    'set providers.{provider}.deployments.{capability} to the name of an existing deployment (names are case-sensitive); ' +
    'list them with `az cognitiveservices account deployment list -g <resource-group> -n {resource} -o table` ' +
    '(or Azure AI Foundry → Deployments); a deployment created in the last 5 minutes may not be visible yet',
} as const;
export const TOKEN = {
  message: 'provider "{provider}": cannot get a Microsoft Entra ID token from {source}: {detail}',
  fix: '{advice}',
} as const;

export const AZURE_FOUNDRY_ERRORS = {
  AZURE_FOUNDRY_ERR_DEPLOYMENT_NOT_FOUND: { ...DEPLOYMENT_NOT_FOUND, exit: 1 },
  AZURE_FOUNDRY_ERR_TOKEN: { ...TOKEN, exit: 1 },
} as const satisfies Record<PluginErrorCode, PluginErrorSpec>;
