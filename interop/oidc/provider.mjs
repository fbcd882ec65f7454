// A local OpenID provider (npm oidc-provider) for tokenlife's remote-keys interop run.
//
//   node provider.mjs PORT GENERATION [ALG]
//
// Serves discovery and the JWKS on http://127.0.0.1:PORT with RS256, ES256 and EdDSA
// keys whose kids carry GENERATION (restart with another one to rotate), and issues
// RFC 9068 JWT access tokens (audience api://orders, signed with ALG, default ES256)
// to client `svc` / `svc-secret` through the client-credentials grant.
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const [port = '9400', gen = '1', alg = 'ES256'] = process.argv.slice(2);

function jwk(type, options, kid, alg) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}

const keys = [
  jwk('rsa', { modulusLength: 2048 }, `rsa-${gen}`, 'RS256'),
  jwk('ec', { namedCurve: 'P-256' }, `ec-${gen}`, 'ES256'),
  jwk('ed25519', {}, `ed-${gen}`, 'EdDSA'),
];

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: 'svc',
    client_secret: 'svc-secret',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
  }],
  jwks: { keys },
  features: {
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'api://orders',
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'orders:read',
        audience: 'api://orders',
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg } },
      }),
    },
  },
});
provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`provider ${provider.issuer} generation ${gen} signing ${alg}`);
});
