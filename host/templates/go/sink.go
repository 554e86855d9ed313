// Sink: logs how many rows each batch has (replace with your destination,
// e.g. weir.HTTPPost(url, "application/json", body) to a host on the
// pipeline's allowlist). Return weir.Retryable(...) for transient failures
// (the host retries with backoff), weir.Permanent(...) to dead-letter the
// batch, or weir.RejectRows(...) for single rows.
package main

import weir "weir/sdk"

type logger struct{}

func (logger) Write(batch *weir.Batch) error {
	weir.Log(weir.Info, "received %d rows", batch.NumRows)
	return nil
}

func init() {
	weir.ExportSink(func(config string) (weir.Sink, error) {
		if err := weir.DecodeConfig(config, &struct{}{}); err != nil { // no settings
			return nil, err
		}
		return logger{}, nil
	})
}
