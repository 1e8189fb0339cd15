import Handlebars from 'handlebars';

/**
 * A newsletter's digest subject template: Handlebars over a few variables, checked when it is
 * saved (digest-voice.ts renders it).
 */
export const SUBJECT_TEMPLATE_MAX = 200;

/** The variables a subject template can use. */
export const SUBJECT_VARIABLES = ['newsletter', 'firstTitle', 'count', 'more', 'date'] as const;

/** The subject when neither the digest nor its newsletter gives one. */
export const DEFAULT_SUBJECT_TEMPLATE = '{{newsletter}}: {{firstTitle}}{{#if more}} and {{more}} more{{/if}}';

/** Why a subject template cannot be used, or null when it can. */
export function subjectTemplateError(template: string): string | null {
  if (/[\r\n]/.test(template)) return 'subjectTemplate must be one line';
  if (template.length > SUBJECT_TEMPLATE_MAX)
    return `subjectTemplate must be at most ${SUBJECT_TEMPLATE_MAX} characters`;
  let ast: ReturnType<typeof Handlebars.parse>;
  try {
    ast = Handlebars.parse(template);
  } catch {
    return 'subjectTemplate is not a valid template (use {{newsletter}}, {{firstTitle}}, {{count}}, {{more}}, {{date}})';
  }
  const unknown = usedNames(ast).filter((n) => !(SUBJECT_VARIABLES as readonly string[]).includes(n));
  if (unknown.length > 0)
    return `subjectTemplate uses unknown variables: ${unknown.join(', ')} (known: ${SUBJECT_VARIABLES.join(', ')})`;
  return null;
}

/** Every name a template reads (mustaches, block helpers' arguments); helpers `if`/`unless` are allowed. */
function usedNames(node: unknown, out: string[] = []): string[] {
  if (!node || typeof node !== 'object') return out;
  const n = node as { type?: string; original?: string; parts?: string[] };
  if (n.type === 'PathExpression' && n.original && !['if', 'unless'].includes(n.original)) out.push(n.original);
  for (const value of Object.values(node as Record<string, unknown>)) {
    if (Array.isArray(value)) for (const v of value) usedNames(v, out);
    else if (value && typeof value === 'object') usedNames(value, out);
  }
  return out;
}
