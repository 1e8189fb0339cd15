/**
 * Fills the hidden field just before it with the reader's IANA time zone and enables it. Static
 * text: the hosted signup page allows it by its sha256 hash, and on a publisher's page it is the
 * snippet's only script (block-scoped, nothing left on `window`). Without it (no JavaScript, a CSP
 * refusing inline scripts, an old browser, a zone the browser cannot name) the field stays disabled,
 * so the form sends no `timezone` and the reader's zone stays unknown.
 */
export const TIMEZONE_SCRIPT =
  'try { const f = document.currentScript.previousElementSibling, z = Intl.DateTimeFormat().resolvedOptions().timeZone; if (f.name === "timezone" && z && z !== "Etc/Unknown") { f.value = z; f.disabled = false; } } catch (e) {}';

/** The hidden `timezone` field with its script, the same in the snippet and on the hosted signup page. */
export const TIMEZONE_FIELD = `<input type="hidden" name="timezone" disabled><script>${TIMEZONE_SCRIPT}</script>`;

/** Escapes a value for an HTML text node or a double-quoted attribute. */
function esc(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * The signup box a publisher pastes at the end of an article: a plain HTML form that posts to
 * `POST /v1/subscriptions` (the answer is the hosted "check your inbox" page). One short inline
 * script (TIMEZONE_FIELD), no external asset; its styles are scoped under `.mr-signup` and the form
 * still works where a Content-Security-Policy refuses inline styles or scripts. The wording is the
 * consent text stored with every signup, so keep it as it is.
 */
export function embedSnippet(opts: {
  publicUrl: string;
  newsletter?: string;
  /** The newsletter's own guide: none → no offer (never another newsletter's guide). */
  guideTitle?: string | null;
  /** PRIVACY_URL: linked from the privacy line when set. */
  privacyUrl?: string | null;
}): string {
  const action = esc(`${opts.publicUrl}/v1/subscriptions`);
  const offer = opts.guideTitle ? ` and get our FREE Guide: <strong>${esc(opts.guideTitle)}</strong>.` : '.';
  const privacy = opts.privacyUrl ? ` <a href="${esc(opts.privacyUrl)}">Privacy policy</a>.` : '';
  const newsletter = opts.newsletter
    ? `\n    <input type="hidden" name="newsletters" value="${esc(opts.newsletter)}">`
    : '';
  return `<!-- Mailroom signup box: paste at the end of an article -->
<section class="mr-signup" aria-label="Newsletter signup">
  <style>
    .mr-signup{box-sizing:border-box;max-width:640px;margin:32px 0;padding:24px;border:1px solid #cfe6da;border-top:4px solid #0b6e4f;border-radius:10px;background:#f3f9f6;color:#1b2733;font:16px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
    .mr-signup *{box-sizing:border-box}
    .mr-signup p{margin:0 0 16px}
    .mr-signup .mr-lead{font-size:19px;line-height:1.4;font-weight:600}
    .mr-signup .mr-lead strong{font-weight:800}
    .mr-signup label{display:block;margin:0 0 6px;font-weight:600;font-size:16px}
    .mr-signup .mr-row{display:flex;flex-wrap:wrap;gap:8px}
    .mr-signup input[type=email]{flex:1 1 220px;width:auto;margin:0;min-height:48px;padding:10px 12px;font:inherit;color:#1b2733;background:#fff;border:1px solid #6b7785;border-radius:8px}
    .mr-signup button{flex:0 0 auto;display:inline-block;width:auto;margin:0;min-height:48px;line-height:1.25;font-size:17px;padding:10px 22px;font:inherit;font-weight:700;color:#fff;background:#0b6e4f;border:2px solid #0b6e4f;border-radius:8px;cursor:pointer}
    .mr-signup button:hover{background:#085a40;border-color:#085a40}
    .mr-signup input:focus-visible,.mr-signup button:focus-visible{outline:3px solid #12324a;outline-offset:2px}
    .mr-signup .mr-privacy{margin:12px 0 0;font-size:14px;color:#4a5866}
    .mr-signup .mr-privacy a{color:#085a40}
    .mr-signup .mr-hp{position:absolute;left:-10000px;width:1px;height:1px;overflow:hidden}
  </style>
  <p class="mr-lead"><strong>Subscribe to our weekly newsletter</strong>${offer}</p>
  <form method="post" action="${action}">
    <label for="mr-email">Email address</label>
    <div class="mr-row">
      <input id="mr-email" name="email" type="email" required maxlength="254" autocomplete="email" placeholder="you@example.com">
      <button type="submit">Subscribe</button>
    </div>${newsletter}
    ${TIMEZONE_FIELD}
    <div class="mr-hp" aria-hidden="true"><label for="mr-website">Leave this empty</label><input id="mr-website" name="website" type="text" tabindex="-1" autocomplete="off"></div>
  </form>
  <p class="mr-privacy">We respect your privacy. Unsubscribe at any time.${privacy}</p>
</section>`;
}
