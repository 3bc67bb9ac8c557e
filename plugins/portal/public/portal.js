// The portal's entry module: the live console first (it works whatever the
// catalogue does), then the catalogue, whose buttons fill the console's forms.
import { StreamConsole } from './console.js'
import { showCatalogue, showReader, showSnippetKey } from './catalogue.js'
import { DeveloperPanel } from './applications.js'
import { drawUsage } from './usage-chart.js'

const streamConsole = new StreamConsole()
// once connected, the catalogue marks the reader's plan and fills examples with their own topics
streamConsole.onReader = showReader
showCatalogue({
  fillSubscribe (topic) {
    streamConsole.fillSubscribe(topic)
    document.getElementById('console')?.scrollIntoView({ block: 'start' })
  },
  fillPublish (topic, value) {
    streamConsole.fillPublish(topic, value)
    document.getElementById('publish-form')?.scrollIntoView({ block: 'nearest' })
  }
})
// a key issued in "My applications" goes straight into the console's credential
new DeveloperPanel({
  useKey (key) {
    const credential = /** @type {HTMLInputElement} */ (document.getElementById('credential'))
    credential.value = key
    document.getElementById('console')?.scrollIntoView({ block: 'start' })
  },
  // the catalogue's code snippets are filled in with it
  keyIssued: showSnippetKey,
  drawUsage (box, days) { drawUsage(box, days) },
  // an approval shows in the console's identity when the developer lists their applications again
  listed () { streamConsole.refreshIdentity() }
}).show()
document.documentElement.dataset.ready = 'true'
