// Copy-paste clients of one topic: a browser, Node (ws), Python (websockets),
// websocat, wscat, and MQTT.js on /mqtt. Pure strings, no DOM: the catalogue
// shows them, and a test checks them without a browser. The reader's key
// goes in where they have one (a key issued in "My applications" in this
// tab); otherwise a placeholder that says where to get one.

export const KEY_PLACEHOLDER = 'sk_YOUR_KEY'

/**
 * A string as a JavaScript or Python literal: JSON's quoting is valid in both
 * for what topics, URLs and keys hold (letters, digits, `._-*:/?&=`).
 * @param {string} value
 */
function quoted (value) {
  return JSON.stringify(value)
}

/**
 * A string as one shell word: single quotes, any single quote closed and escaped.
 * @param {string} value
 */
function shell (value) {
  return `'${value.replaceAll('\'', '\'\\\'\'')}'`
}

/**
 * @typedef {object} Snippet
 * @property {string} id a short name (`browser`, `node`, `python`, `websocat`, `wscat`, `mqtt`)
 * @property {string} title what it is, for the reader
 * @property {string} code the text to copy
 */

/**
 * The snippets of one topic (or pattern) of /v1/stream.
 * @param {string} topic
 * @param {string} origin the gateway's origin as the page sees it (window.location.origin)
 * @param {string} [key] the reader's API key, if they have one here
 * @returns {Snippet[]}
 */
export function snippets (topic, origin, key) {
  const credential = key ?? KEY_PLACEHOLDER
  const base = origin.replace(/^http/, 'ws')
  const stream = `${base}/v1/stream?topics=${encodeURIComponent(topic)}`
  return [
    {
      id: 'browser',
      title: 'Browser',
      // a browser cannot set headers on a WebSocket: the key goes in the query (api_key)
      code: [
        `const ws = new WebSocket(${quoted(`${stream}&api_key=${encodeURIComponent(credential)}`)})`,
        'ws.onmessage = event => {',
        '  const frame = JSON.parse(event.data)',
        '  if (frame.op === \'message\') console.log(frame.topic, frame.offset, frame.value)',
        '  if (frame.op === \'error\') console.warn(frame.code, frame.message)',
        '}',
        'ws.onclose = event => console.log(\'closed\', event.code, event.reason)'
      ].join('\n')
    },
    {
      id: 'node',
      title: 'Node.js (npm i ws)',
      code: [
        'import WebSocket from \'ws\'',
        '',
        `const ws = new WebSocket(${quoted(stream)}, { headers: { 'x-api-key': ${quoted(credential)} } })`,
        'ws.on(\'message\', data => {',
        '  const frame = JSON.parse(data.toString())',
        '  if (frame.op === \'message\') console.log(frame.topic, frame.offset, frame.value)',
        '})',
        'ws.on(\'close\', (code, reason) => console.log(\'closed\', code, reason.toString()))'
      ].join('\n')
    },
    {
      id: 'python',
      title: 'Python (pip install websockets)',
      code: [
        'import asyncio',
        'import json',
        'from websockets.asyncio.client import connect',
        '',
        '',
        'async def main():',
        `    async with connect(${quoted(stream)}, additional_headers={"x-api-key": ${quoted(credential)}}) as ws:`,
        '        async for text in ws:',
        '            frame = json.loads(text)',
        '            if frame["op"] == "message":',
        '                print(frame["topic"], frame["offset"], frame["value"])',
        '',
        '',
        'asyncio.run(main())'
      ].join('\n')
    },
    {
      id: 'websocat',
      title: 'websocat',
      code: `websocat -H ${shell(`x-api-key: ${credential}`)} ${shell(stream)}`
    },
    {
      id: 'wscat',
      title: 'wscat (npm i -g wscat)',
      code: `wscat -H ${shell(`x-api-key: ${credential}`)} -c ${shell(stream)}`
    },
    {
      id: 'mqtt',
      title: 'MQTT.js on /mqtt (npm i mqtt)',
      // the MQTT topic names of a Kafka topic are the product's `mqtt` mappings in the policy, which
      // the catalogue does not publish: the filter is the reader's to fill in
      code: [
        'import mqtt from \'mqtt\'',
        '',
        `const client = await mqtt.connectAsync(${quoted(`${base}/mqtt`)}, { protocolVersion: 5, username: 'me', password: ${quoted(credential)} })`,
        `// an MQTT filter that the product's mqtt mappings turn into ${topic}`,
        'await client.subscribeAsync(\'your/mqtt/filter/#\')',
        'client.on(\'message\', (topic, payload) => console.log(topic, payload.toString()))'
      ].join('\n')
    }
  ]
}
