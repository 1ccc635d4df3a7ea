import { XMLBuilder } from "fast-xml-parser";

/** The body a subscriber receives: the event envelope without TME's internal routing fields. */
export interface WebhookPayload {
  id: string;
  type: string;
  occurred_at: string;
  data: Record<string, unknown>;
}

export type WebhookFormat = "json" | "xml";

export function encodePayload(
  payload: WebhookPayload,
  format: WebhookFormat,
): { body: string; contentType: string } {
  return format === "xml"
    ? { body: toXml(payload), contentType: "application/xml; charset=utf-8" }
    : {
        // The envelope in its documented order: the stored event comes back from jsonb with its
        // keys sorted by length.
        body: JSON.stringify({
          id: payload.id,
          type: payload.type,
          occurred_at: payload.occurred_at,
          data: payload.data,
        }),
        contentType: "application/json; charset=utf-8",
      };
}

/*
 * XML mapping, chosen so any JSON value survives the trip and a receiver can rebuild it:
 * - root <event> with <id>, <type>, <occurred_at>, <data>;
 * - an object's key becomes an element of that name when it is a safe XML name (ASCII letter
 *   or _, then letters, digits, ".", "-", "_", and not starting with "xml"); any other key
 *   becomes <entry name="the key">;
 * - an array becomes <key type="array"> with one <item> per element;
 * - numbers and booleans carry type="number" / type="boolean", null is <key nil="true"/>;
 * - strings are text, escaped by the builder. XML 1.0 cannot carry most C0 control characters
 *   at all (not even as &#n; references), and a raw CR is turned into LF by every parser, so a
 *   string containing any of U+0000-U+0008, U+000B, U+000C, U+000D, U+000E-U+001F, U+FFFE or
 *   U+FFFF is sent base64-encoded (UTF-8) with encoding="base64". Unpaired surrogates cannot be
 *   encoded in UTF-8 and become U+FFFD, as they do in the JSON format.
 */
const SAFE_NAME = /^(?![xX][mM][lL])[A-Za-z_][A-Za-z0-9._-]*$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
const NOT_XML_TEXT = /[\u0000-\u0008\u000B-\u001F\uFFFE\uFFFF]/;

type XmlNode = string | { [key: string]: XmlNode | XmlNode[] };

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
function wellFormed(text: string): string {
  return text.replace(LONE_SURROGATE, "\uFFFD");
}

function textNode(value: string): XmlNode {
  const text = wellFormed(value);
  if (!NOT_XML_TEXT.test(text)) return text;
  return { "#text": Buffer.from(text, "utf8").toString("base64"), "@_encoding": "base64" };
}

function toNode(value: unknown): XmlNode {
  if (value === null || value === undefined) return { "@_nil": "true" };
  if (typeof value === "string") return textNode(value);
  if (typeof value === "number" || typeof value === "bigint")
    return { "#text": String(value), "@_type": "number" };
  if (typeof value === "boolean") return { "#text": String(value), "@_type": "boolean" };
  if (Array.isArray(value)) {
    const node: { [key: string]: XmlNode | XmlNode[] } = { "@_type": "array" };
    if (value.length > 0) node.item = value.map(toNode);
    return node;
  }
  if (value instanceof Date) return value.toISOString();
  return objectNode(value as Record<string, unknown>);
}

function objectNode(object: Record<string, unknown>): { [key: string]: XmlNode | XmlNode[] } {
  const node: { [key: string]: XmlNode | XmlNode[] } = {};
  const entries: XmlNode[] = [];
  for (const [key, value] of Object.entries(object)) {
    if (value === undefined) continue;
    if (SAFE_NAME.test(key) && key !== "entry" && key !== "item") {
      node[key] = toNode(value);
      continue;
    }
    const child = toNode(value);
    const named: { [key: string]: XmlNode | XmlNode[] } =
      typeof child === "string" ? { "#text": child } : { ...child };
    const name = wellFormed(key);
    if (NOT_XML_TEXT.test(name)) {
      named["@_name"] = Buffer.from(name, "utf8").toString("base64");
      named["@_name_encoding"] = "base64";
    } else {
      named["@_name"] = name;
    }
    entries.push(named);
  }
  if (entries.length > 0) node.entry = entries;
  return node;
}

const builder = new XMLBuilder({
  ignoreAttributes: false,
  attributeNamePrefix: "@_",
  textNodeName: "#text",
  suppressEmptyNode: false,
  suppressBooleanAttributes: false,
  processEntities: true,
  format: false,
});

export function toXml(payload: WebhookPayload): string {
  const event = {
    id: textNode(payload.id),
    type: textNode(payload.type),
    occurred_at: textNode(payload.occurred_at),
    data: objectNode(payload.data),
  };
  return `<?xml version="1.0" encoding="UTF-8"?>${builder.build({ event })}`;
}
