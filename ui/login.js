// The answer to a redeemed login link carries the page key; keep it in this origin's storage
// (scoped by port, unlike the cookie) and open the panel in place of the login entry, so the
// browser's history holds neither the token nor the key.
const key = document.querySelector('meta[name="koto-key"]')?.getAttribute('content');
if (key) localStorage.setItem('koto-ui-key', key);
location.replace('/#live');
