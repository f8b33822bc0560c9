// Passkeys on the hosted pages, with the browser's own WebAuthn JSON helpers (no library). The email step
// offers passkey autofill (conditional mediation) and a button (username first when an email is typed);
// the passkey page adds a passkey. The browser's answer goes back in a plain form post, so the server's
// redirect to the application works as for the other steps.
(() => {
  const status = document.getElementById("passkey-status");
  const say = (text) => {
    if (status) status.textContent = text;
  };
  const login = document.getElementById("passkey-login");
  const register = document.getElementById("passkey-register");
  const forms = [login, register].filter(Boolean);
  if (!window.PublicKeyCredential || !PublicKeyCredential.parseRequestOptionsFromJSON) {
    for (const form of forms) form.querySelector("button").disabled = true;
    say(status ? status.dataset.unsupported : "");
    return;
  }
  const options = async (url, body) => {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    const data = await response.json();
    if (!response.ok) throw new Error(data.message || "The passkey step failed. Please try again.");
    return data;
  };
  const send = (form, credential) => {
    form.querySelector("input[name=response]").value = JSON.stringify(credential.toJSON());
    form.submit();
  };
  const explain = (error) =>
    say(error.name === "NotAllowedError" ? "The passkey step was cancelled or timed out." : error.message);

  if (login) {
    const discoverable = JSON.parse(login.dataset.options);
    let autofill = null;
    // Settles once the autofill request is over; the button waits for it, since a browser runs one
    // WebAuthn request at a time.
    const autofillOver = (async () => {
      if (!(await PublicKeyCredential.isConditionalMediationAvailable?.())) return;
      autofill = new AbortController();
      try {
        const credential = await navigator.credentials.get({
          publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(discoverable),
          mediation: "conditional",
          signal: autofill.signal,
        });
        if (credential) send(login, credential);
      } catch {
        // Aborted for the button, or dismissed: the page stays as it is.
      }
    })();
    login.addEventListener("submit", async (event) => {
      event.preventDefault();
      autofill?.abort();
      await autofillOver;
      try {
        const email = document.getElementById("email")?.value.trim();
        const request = email ? await options(login.dataset.usernameOptions, { email }) : discoverable;
        const credential = await navigator.credentials.get({
          publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(request),
        });
        send(login, credential);
      } catch (error) {
        explain(error);
      }
    });
  }

  if (register) {
    register.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const request = await options(register.dataset.options, {});
        const credential = await navigator.credentials.create({
          publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(request),
        });
        send(register, credential);
      } catch (error) {
        explain(error);
      }
    });
  }
})();
