/**
 * Reply formatting (RFC 959 §4.2). A reply is one string so that a
 * multi-line reply leaves in one write, one TCP segment where it fits.
 */

/** Text must never carry CR or LF: that would let a file name forge a reply. */
function clean(text: string): string {
  return /[\r\n]/.test(text) ? text.replace(/[\r\n]+/g, ' ') : text;
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
