// The portal's entry module: the live console first (it works whatever the
// catalogue does), then the catalogue, whose buttons fill the console's forms.
import { StreamConsole } from './console.js'
import { showCatalogue, showReader } from './catalogue.js'

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
document.documentElement.dataset.ready = 'true'
