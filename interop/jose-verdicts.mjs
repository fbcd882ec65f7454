// Verdicts of npm `jose` on the vectors written by
// `cargo run -p examples --example attack_vectors`: one line of JSON per vector,
// {"name", "tokenlife", "jose"} where "jose" is "ok" or jose's error code.
import { readFileSync } from 'node:fs';
import * as jose from 'jose';

const doc = JSON.parse(readFileSync(process.argv[2] ?? 'vectors.json', 'utf8'));
const jwks = jose.createLocalJWKSet(doc.jwks);
const secret = Buffer.from(doc.hmac_secret_b64, 'base64url');

// The HMAC keys are not in the public JWKS: hand jose the shared secret for a header
// that names an HMAC key by its kid (the kids are the algorithm names), as tokenlife's
// keyset does; anything else goes to the JWKS.
async function key(header, token) {
  if (['HS256', 'HS384', 'HS512'].includes(header.kid)) {
    if (header.alg !== header.kid) throw Object.assign(new Error('alg mismatch'), { code: 'ERR_ALG_MISMATCH' });
    return secret;
  }
  return jwks(header, token);
}

for (const v of doc.vectors) {
  let verdict;
  try {
    await jose.jwtVerify(v.token, key, {
      issuer: doc.iss,
      audience: doc.aud,
      currentDate: new Date(doc.now * 1000),
      clockTolerance: doc.leeway,
      requiredClaims: ['exp', 'iss', 'aud'],
    });
    verdict = 'ok';
  } catch (e) {
    verdict = e.code ?? e.name ?? 'error';
  }
  console.log(JSON.stringify({ name: v.name, tokenlife: v.tokenlife, jose: verdict }));
}
