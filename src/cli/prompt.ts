/**
 * Passwords for `ferry user` and `ferry hash-password`: typed at a terminal
 * without echo (asked twice), or read from standard input for scripts.
 */
export async function readPassword(options: { fromStdin: boolean; confirm: boolean }): Promise<string> {
  const stdin = process.stdin;
  if (options.fromStdin || !stdin.isTTY) {
    let text = '';
    for await (const chunk of stdin) text += chunk;
    // One trailing newline is the end of the line, not part of the password.
    return text.replace(/\r?\n$/, '');
  }
  const first = await promptHidden('Password: ');
  if (options.confirm && (await promptHidden('Repeat password: ')) !== first) throw new Error('the passwords differ; nothing was changed');
  return first;
}

function promptHidden(question: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(question);
    stdin.setRawMode(true);
    stdin.setEncoding('utf8');
    stdin.resume();
    let typed = '';
    const done = (error?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (error) reject(error);
      else resolve(typed);
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003') return done(new Error('cancelled'));
        if (ch === '\u007f' || ch === '\b') typed = typed.slice(0, -1);
        else if (ch >= ' ') typed += ch;
      }
    };
    stdin.on('data', onData);
  });
}
