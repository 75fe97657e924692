//! The default layout sent with every replay: the camera with its overlays
//! and the event log on the left; the 3D scene and the plots on the right.

use rerun::blueprint::components::PanelState;
use rerun::blueprint::{
    Blueprint, BlueprintPanel, ContainerLike, Horizontal, SelectionPanel, Spatial2DView, Spatial3DView, Tabs,
    TextLogView, TimePanel, TimeSeriesView, Vertical,
};

use super::{TIMELINE, entity};
use nines_datasets::topics;

/// The layout for a drive with these topics: views for data the drive does
/// not have (model outputs, diagnostics) are left out.
#[must_use]
pub fn blueprint(drive_topics: &[String]) -> Blueprint {
    let has = |topic: &str| drive_topics.iter().any(|t| t == topic);

    let camera = Spatial2DView::new("camera").with_origin(entity::CAMERA).with_contents(["$origin/**"]);
    let mut logs: Vec<ContainerLike> = vec![TextLogView::new("events").with_origin(entity::EVENTS).into()];
    if has(topics::DIAGNOSTICS) {
        logs.push(TextLogView::new("diagnostics").with_origin(entity::DIAGNOSTICS).into());
    }
    let mut left: Vec<ContainerLike> = vec![camera.into()];
    if has(topics::MODEL_DEPTH) {
        left.push(Spatial2DView::new("model depth").with_origin("model").into());
    }
    left.push(Tabs::new(logs).into());
    let left_shares: Vec<f32> = if left.len() == 3 { vec![3.0, 2.0, 1.5] } else { vec![3.0, 1.5] };

    // Centred on the ego, so the view follows the car. The viewer frames a
    // 3D view on the bounds of what it shows, so the whole driven path (the
    // length of the drive) is left out: the view then frames the lidar's
    // range around the car. The path ahead and everything else is shown.
    let scene = Spatial3DView::new("3D")
        .with_origin(entity::EGO)
        .with_contents([format!("/{}/**", entity::WORLD), format!("- /{}", entity::DRIVEN_PATH)]);
    let plot = |name: &str, origin: &str| TimeSeriesView::new(name).with_origin(origin).into();
    let mut plots: Vec<ContainerLike> = vec![
        plot("steering (rad)", entity::STEERING),
        plot("speed (m/s)", entity::SPEED),
        plot("acceleration (m/s²)", entity::ACCELERATION),
    ];
    if has(topics::MODEL_OUTPUT) {
        plots.push(plot("lead", entity::LEAD));
    }
    if has(topics::CONTROL_SOURCE) {
        plots.push(plot("who drove", entity::CONTROL));
    }
    if has(topics::GT_LANE) {
        plots.push(plot("lane (ground truth)", entity::LANE));
    }
    let right = Vertical::new([scene.into(), Vertical::new(plots).into()]).with_row_shares([3.0, 2.0]);

    Blueprint::new(
        Horizontal::new([Vertical::new(left).with_row_shares(left_shares).into(), right.into()])
            .with_column_shares([1.2, 1.0]),
    )
    .with_blueprint_panel(BlueprintPanel::new().with_state(PanelState::Collapsed))
    .with_selection_panel(SelectionPanel::new().with_state(PanelState::Collapsed))
    .with_time_panel(TimePanel::new().with_state(PanelState::Expanded).with_timeline(TIMELINE))
}
