// Solves the hosted page's ALTCHA proof-of-work challenge (PBKDF2/SHA-256, deterministic mode): counts up
// from 0 until the derived key starts with the challenge's key prefix, then puts the challenge and the
// solution in the form's `captcha` field. Uses only WebCrypto; sends nothing anywhere.
(async () => {
  const form = document.querySelector("form[data-challenge]");
  if (!form) return;
  const button = form.querySelector("button[type=submit]");
  const field = form.querySelector("input[name=captcha]");
  const status = document.getElementById("captcha-status");
  button.disabled = true;
  const challenge = JSON.parse(form.dataset.challenge);
  const p = challenge.parameters;
  const bytes = (hex) => Uint8Array.from(hex.match(/../g) || [], (h) => parseInt(h, 16));
  const hex = (buffer) => Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
  const hash = { "PBKDF2/SHA-256": "SHA-256", "PBKDF2/SHA-384": "SHA-384", "PBKDF2/SHA-512": "SHA-512" }[
    p.algorithm.toUpperCase()
  ];
  const nonce = bytes(p.nonce);
  const salt = bytes(p.salt);
  const prefix = p.keyPrefix.toLowerCase();
  const password = new Uint8Array(nonce.length + 4);
  password.set(nonce);
  const counterView = new DataView(password.buffer, nonce.length, 4);
  for (let counter = 0; counter <= 0xffffffff; counter += 1) {
    counterView.setUint32(0, counter);
    const key = await crypto.subtle.importKey("raw", password, "PBKDF2", false, ["deriveBits"]);
    const derived = hex(
      await crypto.subtle.deriveBits({ name: "PBKDF2", hash, salt, iterations: p.cost }, key, p.keyLength * 8),
    );
    if (derived.startsWith(prefix)) {
      field.value = JSON.stringify({ challenge, solution: { counter, derivedKey: derived } });
      button.disabled = false;
      if (status) status.textContent = status.dataset.done || "";
      if (form.dataset.autosubmit === "true") form.requestSubmit();
      return;
    }
  }
})();
