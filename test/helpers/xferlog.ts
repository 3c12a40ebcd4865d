/**
 * A reader of xferlog lines written from xferlog(5) alone (not from Ferry's
 * writer), as an analyser would read them: the time is the first five
 * words, then thirteen fields split on spaces.
 */
export interface ParsedXferlog {
  time: Date;
  seconds: number;
  remoteHost: string;
  bytes: number;
  filename: string;
  transferType: string;
  specialAction: string;
  direction: string;
  accessMode: string;
  username: string;
  service: string;
  authMethod: string;
  authUserId: string;
  status: string;
}

const LINE =
  /^(?<time>(?:Sun|Mon|Tue|Wed|Thu|Fri|Sat) (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d \d\d:\d\d:\d\d \d{4}) (\d+) (\S+) (\d+) (\S+) ([ab]) ([CUT_]+) ([oid]) ([agr]) (\S+) (\S+) ([01]) (\S+) ([ci])$/;

export function parseXferlog(line: string): ParsedXferlog {
  const m = LINE.exec(line);
  if (!m) throw new Error(`not an xferlog line: ${JSON.stringify(line)}`);
  const [, time, seconds, remoteHost, bytes, filename, transferType, specialAction, direction, accessMode, username, service, authMethod, authUserId, status] = m as unknown as string[];
  // "Tue Dec  8 02:30:01 2026" is local time; Date parses that form as local.
  return {
    time: new Date(time!.replace(/  +/g, ' ')),
    seconds: Number(seconds),
    remoteHost: remoteHost!,
    bytes: Number(bytes),
    filename: filename!,
    transferType: transferType!,
    specialAction: specialAction!,
    direction: direction!,
    accessMode: accessMode!,
    username: username!,
    service: service!,
    authMethod: authMethod!,
    authUserId: authUserId!,
    status: status!,
  };
}

/** The lines of an xferlog file's text, parsed (empty lines skipped). */
export const parseXferlogFile = (text: string) => text.split('\n').filter((l) => l !== '').map(parseXferlog);
