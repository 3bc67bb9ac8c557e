// compose-check loads a compose file the way `docker compose config` does, with
// compose-go (the library the docker compose CLI is built on), and needs no
// Docker engine: the compose-spec JSON schema, interpolation (${VAR:?message}
// included), normalization and the cross-service checks (depends_on, volumes,
// networks). It prints the resolved project as JSON, with every profile's
// services, or the loader's error and exits 1.
//
//	go run . ../compose.yaml
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: compose-check <compose.yaml>")
		os.Exit(2)
	}
	options, err := cli.NewProjectOptions(
		[]string{os.Args[1]},
		cli.WithOsEnv,
		// every profile: a service behind one is checked like the others
		cli.WithProfiles([]string{"*"}),
	)
	if err != nil {
		fail(err)
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		fail(err)
	}
	out, err := project.MarshalJSON()
	if err != nil {
		fail(err)
	}
	os.Stdout.Write(out)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "compose-check:", err)
	os.Exit(1)
}
