// Command gpx_tripwire is the backend of the TripWire datasource: Grafana
// starts it as a plugin process and talks to it over gRPC.
package main

import (
	"os"

	"github.com/grafana/grafana-plugin-sdk-go/backend/datasource"
	"github.com/grafana/grafana-plugin-sdk-go/backend/log"

	"github.com/tripwire-sec/tripwire/grafana-plugin/pkg/plugin"
)

func main() {
	if err := datasource.Manage(plugin.DatasourceID, plugin.NewDatasource, datasource.ManageOpts{}); err != nil {
		log.DefaultLogger.Error("serving plugin", "error", err)
		os.Exit(1)
	}
}
