/** ECharts, imported piece by piece so the bundle only carries what the screens draw. */
import * as echarts from 'echarts/core'
import { BarChart, FunnelChart } from 'echarts/charts'
import { GridComponent, LegendComponent, TooltipComponent } from 'echarts/components'
import { CanvasRenderer } from 'echarts/renderers'

echarts.use([FunnelChart, BarChart, GridComponent, LegendComponent, TooltipComponent, CanvasRenderer])

export { echarts }
export type ECharts = ReturnType<typeof echarts.init>
