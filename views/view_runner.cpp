#include "views/view_runner.h"

namespace freshet {

Result<std::unique_ptr<ViewRunner>> ViewRunner::Create(const Config& config,
                                                       const ProjectionRegistry& projections) {
  std::unique_ptr<ViewRunner> runner(new ViewRunner());
  auto supervisor = ViewSupervisor::Create(config, projections, runner->metrics_);
  if (!supervisor.ok()) return supervisor.status();
  runner->supervisor_ = std::move(supervisor.value());
  runner->api_ = std::make_unique<ViewHttpApi>(*runner->supervisor_, runner->metrics_);
  runner->live_ = std::make_unique<LiveEndpoints>(*runner->supervisor_, runner->metrics_);
  runner->supervisor_->set_on_commit([api = runner->api_.get()] { api->Committed(); });
  return runner;
}

ViewRunner::~ViewRunner() { Stop(); }

Status ViewRunner::Start() {
  FRESHET_RETURN_IF_ERROR(supervisor_->Start());
  api_->Start();
  live_->Start();
  return Status::Ok();
}

void ViewRunner::Stop() {
  if (stopped_ || !supervisor_) return;  // (Create failed: nothing ran)
  stopped_ = true;
  live_->Stop();        // clients hear first, while the views flush
  supervisor_->Stop();  // engines, then the owners' tail
  api_->Stop();         // last: waiting readers get a last check of the stores
}

}  // namespace freshet
