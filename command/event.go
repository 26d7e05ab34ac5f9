package command

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/api"
)

func newEventCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "event",
		Short: "Follow the cluster's event stream",
	}
	var topics []string
	var index uint64
	var all bool
	stream := &cobra.Command{
		Use:   "stream [-topic TOPIC:KEY]... [-index N]",
		Short: "Print events as newline-delimited JSON as they happen",
		Long: `Print the cluster's events (what each write changed) as newline-delimited
JSON, one event per line, until interrupted:

  {"Topic":"Allocation","Type":"AllocationUpdated","Key":"<alloc ID>",
   "Namespace":"default","FilterKeys":["web"],"Index":42,"Payload":{...}}

Topics: Job, Allocation, Evaluation, Deployment, Node, or *; after the
colon an object ID, a job ID (allocations, evaluations, deployments) or *.
Without -topic, every topic.

  drover event stream -topic 'Job:*' -topic 'Allocation:web'
  drover event stream -index 1234        resume after index 1234

-index resumes exactly after that index (every event of later indexes,
once); an index older than what the server keeps fails with "gone":
start again without -index. The stream is served by server agents.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var q *api.QueryOptions
			if all {
				q = &api.QueryOptions{Namespace: "*"}
			}
			s, err := c.Events().Stream(topics, index, q)
			if err != nil {
				if api.IsGone(err) {
					return fmt.Errorf("%w\n(the server no longer keeps the events after index %d; run without -index to start from now)", err, index)
				}
				return err
			}
			defer s.Close()
			for {
				line, err := s.Raw()
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return err
				}
				if string(line) == "{}" {
					continue
				}
				g.ui.Printf("%s\n", line)
			}
		},
	}
	stream.Flags().StringArrayVar(&topics, "topic", nil, "TOPIC:KEY to follow (repeatable; default every topic)")
	stream.Flags().Uint64Var(&index, "index", 0, "resume after this index")
	stream.Flags().BoolVar(&all, "all-namespaces", false, "events of every namespace the token may read (default: -namespace's)")
	cmd.AddCommand(stream)
	return cmd
}
