// Verifies a delivery's `X-Hub-Signature-256` with GitHub's own verification code
// (@octokit/webhooks-methods, pinned in package.json), as a receiver written for GitHub does.
//
//   node github_verify.mjs SECRET BODY_FILE SIGNATURE
//
// Prints "github: verified" and exits 0 if the signature is GitHub's for that body and secret;
// exits 1 otherwise.
import { readFileSync } from "node:fs";
import { verify } from "@octokit/webhooks-methods";

const [secret, bodyFile, signature] = process.argv.slice(2);
const body = readFileSync(bodyFile, "utf8");
if (await verify(secret, body, signature)) {
  console.log("github: verified");
} else {
  console.log("github: signature does not verify");
  process.exit(1);
}
