// The layer-4 balancer's CLI; the code is @sluice/stack/balancer (packages/stack/src/balancer.ts).
//   deploy/local/node.sh deploy/local/balancer.ts --port 8080 127.0.0.1:8081 127.0.0.1:8082 127.0.0.1:8083
import { main } from '@sluice/stack/balancer'

main(process.argv.slice(2))
