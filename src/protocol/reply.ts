/**
 * Reply formatting (RFC 959 §4.2). A reply is one string so that a
 * multi-line reply leaves in one write, one TCP segment where it fits.
 */

/**
 * Reply text never carries control characters: CR or LF would let a file
 * name forge a reply, others (ESC, NUL) would reach the user's terminal.
 * They are shown as '?', as ls does.
 */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;
// eslint-disable-next-line no-control-regex
const CONTROLS = /[\x00-\x1f\x7f]/g;

function clean(text: string): string {
  return CONTROL.test(text) ? text.replace(CONTROLS, '?') : text;
}

export function formatReply(code: number, text: string | readonly string[]): string {
  if (typeof text === 'string') return `${code} ${clean(text)}\r\n`;
  if (text.length <= 1) return `${code} ${clean(text[0] ?? '')}\r\n`;
  let out = `${code}-${clean(text[0]!)}\r\n`;
  for (let i = 1; i < text.length - 1; i++) {
    const line = clean(text[i]!);
    // RFC 959 §4.2: an inner line starting with "ddd " or "ddd-" would be read
    // as the end (or start) of a reply; indent it.
    out += (/^\d{3}[ -]/.test(line) ? ' ' : '') + line + '\r\n';
  }
  return out + `${code} ${clean(text[text.length - 1]!)}\r\n`;
}

/** RFC 959 Appendix II: a path in a 257 reply is quoted, inner quotes doubled. */
export function quotePath(path: string): string {
  return `"${path.replace(/"/g, '""')}"`;
}
